"""The start of an address as an operator types it, and the stored addresses it finds."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from alertsvc.addresses import address_prefix, display_email, normalise_email

LABEL = st.text(alphabet="abcmxäöüéñ", min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(
    local=st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True),
    labels=st.lists(LABEL, min_size=1, max_size=3),
)
@example(local="jane", labels=["exämple", "org"])
def test_every_start_of_the_address_as_the_reader_writes_it_finds_it(
    local: str, labels: list[str]
) -> None:
    """However much of ``jane@exämple.org`` is typed, the stored ``jane@xn--exmple-cua.org``
    starts with one of the prefixes looked for, and is kept when checked again."""
    stored = normalise_email(f"{local}@{'.'.join(labels)}.org")
    written = display_email(stored)
    for end in range(1, len(written) + 1):
        prefix = address_prefix(written[:end].upper())
        assert any(stored.startswith(start) for start in prefix.stored), written[:end]
        assert prefix.matches(stored), written[:end]


def test_an_unfinished_label_found_loosely_is_checked_again() -> None:
    prefix = address_prefix("jane@exä")
    assert prefix.stored == ("jane@exä", "jane@xn--ex")
    assert address_prefix("jane@ex").stored == ("jane@ex", "jane@xn--ex")
    assert address_prefix("jane@example.").stored == ("jane@example.",)
    assert prefix.matches("jane@xn--exmple-cua.org")  # exämple
    assert not prefix.matches("jane@xn--exm-una.org")  # exmö


@given(st.text(max_size=40))
def test_any_text_gives_a_prefix_without_an_error(text: str) -> None:
    prefix = address_prefix(text)
    assert prefix.typed in prefix.stored
