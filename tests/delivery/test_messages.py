"""Headers of the messages the worker builds."""

from __future__ import annotations

from email.message import EmailMessage

from alertsvc.database import transaction
from alertsvc.delivery.messages import MANAGE_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER
from alertsvc.models import EmailBody, OutboxEmail, OutboxStatus
from tests.delivery.helpers import outbox_row
from tests.delivery.realistic import TEMPLATES, queue_every_email
from tests.factories import create_subscriber, queue_manage_link, seed_topics
from tests.mail import links, read_message


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


def _every_email(app, mailbox) -> dict[str, EmailMessage]:
    queue_every_email(app)
    messages = mailbox.deliver()
    assert len(messages) == len(TEMPLATES)
    return dict(zip(TEMPLATES, messages, strict=True))


def _head(mailbox, message: EmailMessage) -> bytes:
    [raw] = [
        path.read_bytes()
        for path in mailbox.directory.glob("*.eml")
        if read_message(path)["Message-ID"] == message["Message-ID"]
    ]
    return raw.split(b"\r\n\r\n", 1)[0]


def test_every_email_carries_the_headers_mailbox_providers_look_for(app, mailbox):
    emails = _every_email(app, mailbox)
    data = seed_topics(app)["data"]
    domain = "alerts.test"

    feedback = {template: message["Feedback-ID"] for template, message in emails.items()}
    assert feedback == {
        "confirm": f"none:confirm:alertsvc:{domain}",
        "manage_link": f"none:manage-link:alertsvc:{domain}",
        "subscribed": f"multi:subscribed:alertsvc:{domain}",
        "already_subscribed": f"none:already-subscribed:alertsvc:{domain}",
        "alert": f"{data}:alert:alertsvc:{domain}",
        "digest-daily": f"multi:digest-daily:alertsvc:{domain}",
        "digest-weekly": f"multi:digest-weekly:alertsvc:{domain}",
    }
    for template, message in emails.items():
        assert message["Auto-Submitted"] == "auto-generated", template
        assert message["MIME-Version"] == "1.0", template
        assert message["Date"].datetime is not None, template
        assert str(message["Message-ID"]).endswith(f"@{domain}>"), template
        assert message["From"].addresses[0].display_name == "Public Technology alerts"
        assert message["Feedback-ID"].isascii()
        assert (
            "reader" not in message["Feedback-ID"] and "example.com" not in message["Feedback-ID"]
        )


def test_only_subscription_emails_carry_list_headers_and_one_click_unsubscribe(app, mailbox):
    emails = _every_email(app, mailbox)

    for template in ("confirm", "manage_link", "already_subscribed"):
        message = emails[template]
        assert message["List-Unsubscribe-Post"] is None, template
        assert message["List-Unsubscribe"] is None, template
        assert message["List-Id"] is None, template
    for template in ("subscribed", "alert", "digest-daily", "digest-weekly"):
        message = emails[template]
        assert message["List-Id"] == '"Public Technology alerts" <alerts.alerts.test>'
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click", template
        unsubscribe = str(message["List-Unsubscribe"])
        assert "<https://" in unsubscribe and "<mailto:" in unsubscribe, template


def test_a_hostile_feed_title_cannot_add_a_header(app, mailbox):
    emails = _every_email(app, mailbox)

    for template in ("alert", "digest-daily"):
        message = emails[template]
        head = _head(mailbox, message)
        assert message["Bcc"] is None and message["X-Injected"] is None, template
        assert b"\r\nBcc:" not in head and b"\r\nX-Injected:" not in head, template
        assert b"\r\n\r\n" not in head
    assert emails["alert"]["Subject"].startswith("Councils warned over ransomware Bcc: victim")
    assert "\r" not in emails["alert"]["Subject"] and "\n" not in emails["alert"]["Subject"]


def test_a_hostile_or_accented_site_name_stays_inside_list_id(app, mailbox, monkeypatch):
    monkeypatch.setitem(
        app.config, "SITE_NAME", 'Alerts "quoted"\r\nBcc: victim@evil.example\r\n\r\nbody'
    )
    emails = _every_email(app, mailbox)

    message = emails["subscribed"]
    assert message["Bcc"] is None
    assert b"\r\nBcc:" not in _head(mailbox, message)
    assert message["List-Id"] == (
        '"Alerts \\"quoted\\" Bcc: victim@evil.example body" <alerts.alerts.test>'
    )


def test_a_welsh_site_name_is_encoded_in_list_id(app, mailbox, monkeypatch):
    monkeypatch.setitem(app.config, "SITE_NAME", "Rhybuddion e-bost: Cymraeg â'r ŵyl")
    emails = _every_email(app, mailbox)

    head = _head(mailbox, emails["digest-daily"])
    assert head.isascii()
    assert emails["digest-daily"]["List-Id"] == (
        "Rhybuddion e-bost: Cymraeg â'r ŵyl <alerts.alerts.test>"
    )


def test_a_sender_on_an_internationalised_domain_is_sent_in_ascii(app_with, tmp_path):
    """A Unicode domain in ALERTSVC_MAIL_FROM reached the Message-ID and the unsubscribe
    mailto as Unicode, which no header can carry as an address."""
    from email import policy
    from email.parser import BytesParser

    from alertsvc.delivery.transports import FileTransport
    from tests.delivery.helpers import send_batch
    from tests.factories import queue_manage_link

    app = app_with(MAIL_FROM="Rhybuddion <rhybudd@bücher.de>")
    assert app.config["MAIL_FROM"] == "Rhybuddion <rhybudd@xn--bcher-kva.de>"
    assert app.config["UNSUBSCRIBE_MAILTO"] == "unsubscribe@xn--bcher-kva.de"
    queue_manage_link(app, "reader@example.com")
    assert send_batch(app, FileTransport(tmp_path)).sent == 1
    [path] = tmp_path.glob("*.eml")
    raw = path.read_bytes()
    assert raw.isascii()
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert message["From"].addresses[0].addr_spec == "rhybudd@xn--bcher-kva.de"
    assert message["Message-ID"].endswith("@xn--bcher-kva.de>")


def test_a_sender_domain_that_is_no_domain_name_stops_start_up(make_app):
    import pytest

    from alertsvc.config import ConfigurationError

    with pytest.raises(ConfigurationError, match="ALERTSVC_MAIL_FROM: the domain"):
        make_app(MAIL_FROM="Alerts <a@bü_cher..de>")
