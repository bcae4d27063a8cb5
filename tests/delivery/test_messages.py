"""Headers of the messages the worker builds."""

from __future__ import annotations

from alertsvc.models import OutboxStatus
from tests.delivery.helpers import outbox_row
from tests.factories import queue_manage_link


def test_a_unicode_domain_goes_out_in_its_ascii_form(app, mailbox):
    """Subscribers stored before addresses were stored in ASCII hold the Unicode domain."""
    queue_manage_link(app, "idn@bücher.de")

    [message] = mailbox.deliver()

    assert message["To"] == "idn@xn--bcher-kva.de"
    [raw] = [path.read_bytes() for path in mailbox.directory.glob("*.eml")]
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nTo: idn@xn--bcher-kva.de\r\n" in headers
    assert b"=?utf-8?" not in headers.lower()


def test_a_non_ascii_local_part_fails_the_row_with_its_reason(app, mailbox):
    row_id = queue_manage_link(app, "müller@example.com")

    assert mailbox.deliver() == []

    row = outbox_row(app, row_id)
    assert row.status == OutboxStatus.FAILED
    assert "local part is not ASCII" in row.last_error
