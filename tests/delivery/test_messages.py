"""Headers of the messages the worker builds."""

from __future__ import annotations

from alertsvc.database import transaction
from alertsvc.delivery.messages import MANAGE_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER
from alertsvc.models import EmailBody, OutboxEmail, OutboxStatus
from tests.delivery.helpers import outbox_row
from tests.factories import create_subscriber, queue_manage_link
from tests.mail import links


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


def test_a_shared_body_goes_out_byte_for_byte_in_valid_quoted_printable_mime(app, mailbox):
    """The worker writes digest MIME itself (for speed): what a mail client parses back must
    be exactly the body, whatever it holds, in lines SMTP and RFC 2045 allow."""
    subscriber_id = create_subscriber(app, "reader@example.com")
    tricky = (
        "£5bn for the NHS \u2013 café = “quotes” and a=b\n"
        "trailing spaces   \n"
        ".a line starting with a dot\n"
        "From the start of a line\n" + "long " * 60 + "\n"
        f"Manage: {MANAGE_PLACEHOLDER}\nLeave: {UNSUBSCRIBE_PLACEHOLDER}\n"
    )
    subject = "Daily email alert: 3 new articles on Digital government, Cyber security \u2013 £ ✓"
    with app.app_context(), transaction() as session:
        body = EmailBody(
            content_key="tricky", subject=subject, text=tricky, html=f"<p>{tricky}</p>"
        )
        session.add(body)
        session.flush()
        session.add(
            OutboxEmail(
                template="digest",
                subscriber_id=subscriber_id,
                unsubscribe_topic_ids=[1],
                body_id=body.id,
            )
        )

    [message] = mailbox.deliver()

    [raw] = [path.read_bytes() for path in mailbox.directory.glob("*.eml")]
    head, content = raw.split(b"\r\n\r\n", 1)
    # Only List-Unsubscribe's URL may not be folded (RFC 2369); SMTP allows 998 octets.
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    assert all(len(line) <= 78 for line in content.split(b"\r\n")), "a line over 78 octets"
    assert b"\n" not in raw.replace(b"\r\n", b""), "a bare LF"
    assert raw.isascii()
    assert message["Subject"] == subject
    assert not message.defects
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text["Content-Transfer-Encoding"] == "quoted-printable"
    assert not text.defects and not html.defects
    [manage] = [url for url in links(message) if "/manage/" in url]
    [leave] = [url for url in links(message) if "/unsubscribe/" in url]
    expected = tricky.replace(MANAGE_PLACEHOLDER, manage).replace(UNSUBSCRIBE_PLACEHOLDER, leave)
    assert text.get_content() == expected
    assert html.get_content() == f"<p>{expected}</p>"
    assert message["List-Unsubscribe"].startswith(f"<{leave}>")
