"""Both parts of every email: present, with the same links, in lines mail servers accept,
and non-ASCII text that survives the trip through a mail client's parser."""

from __future__ import annotations

import html
from html.parser import HTMLParser

from alertsvc.html import clean_html, html_to_text_with_links
from tests.delivery.realistic import TEMPLATES, WELSH_TITLE, queue_every_email
from tests.digests.helpers import alerts, at, start_subscriptions_at
from tests.factories import create_article, create_subscriber, seed_topics
from tests.mail import html_part, text_part


class _Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(value for name, value in attrs if name == "href" and value)


def hrefs(markup: str) -> list[str]:
    parser = _Hrefs()
    parser.feed(markup)
    return parser.hrefs


def test_every_email_has_both_parts_with_the_same_links_in_short_lines(app, mailbox):
    queue_every_email(app)
    messages = mailbox.deliver()
    assert len(messages) == len(TEMPLATES)

    for template, message in zip(TEMPLATES, messages, strict=True):
        assert message.get_content_type() == "multipart/alternative", template
        assert [part.get_content_type() for part in message.iter_parts()] == [
            "text/plain",
            "text/html",
        ], template
        text, markup = text_part(message), html_part(message)
        links = hrefs(markup)
        assert links, f"{template}: the HTML part has no links"
        missing = [link for link in links if link not in text]
        assert not missing, f"{template}: HTML links not in the text part: {missing}"
        raw = message.as_bytes()
        assert all(len(line) <= 998 for line in raw.split(b"\n")), template
        assert all(len(line) <= 998 for line in text.splitlines()), template


def test_a_welsh_title_survives_the_round_trip_in_subject_text_and_html(app, mailbox):
    topics = seed_topics(app)
    reader = create_subscriber(app, "darllenydd@example.com", {topics["data"]: "immediately"})
    start_subscriptions_at(app, reader, at("2026-11-24T07:00"))
    create_article(
        app,
        WELSH_TITLE,
        [topics["data"]],
        at("2026-11-25T06:00"),
        summary="<p>Côr a chân yn yr ŵyl: “dyfyniad”.</p>",
        alerted=False,
    )
    assert alerts(app, at("2026-11-25T06:01")).emails == 1

    [message] = mailbox.deliver()

    [path] = list(mailbox.directory.glob("*.eml"))
    raw = path.read_bytes()
    assert raw.isascii(), "non-ASCII must go out encoded (RFC 2047, quoted-printable)"
    assert message["Subject"] == WELSH_TITLE
    assert WELSH_TITLE in text_part(message)
    assert "Côr a chân yn yr ŵyl: “dyfyniad”." in text_part(message)
    assert WELSH_TITLE in html.unescape(html_part(message))
    assert message.get_body(preferencelist=("plain",))["Content-Transfer-Encoding"] == (
        "quoted-printable"
    )


def test_a_summary_in_the_text_part_keeps_each_link_after_its_text():
    summary = clean_html(
        '<p>See <a href="https://gov.example/r?a=1&amp;b=2">the report</a> or '
        '<a href="https://gov.example/x">https://gov.example/x</a>; write to '
        '<a href="mailto:press@gov.example">the press office</a>.</p><p>Fish &amp; chips</p>'
    )

    assert html_to_text_with_links(summary) == (
        "See the report (https://gov.example/r?a=1&b=2) or https://gov.example/x; write to "
        "the press office (mailto:press@gov.example). Fish & chips"
    )
