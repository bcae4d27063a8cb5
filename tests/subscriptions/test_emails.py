"""What every email alertsvc sends looks like in the recipient's mail client."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest

from tests.factories import create_subscriber, create_topic, seed_topics
from tests.mail import html_part, link_path, links, text_part
from tests.subscriptions.helpers import (
    confirm,
    page_text,
    post_signup,
    sign_up_for_link,
    submit,
)

EMAIL_KINDS = ["confirm", "subscribed", "already subscribed", "manage link"]


def _send(kind: str, app, mailbox):
    """Cause one email of ``kind`` the way a reader would; return it."""
    client = app.test_client()
    topics = seed_topics(app)
    if kind == "confirm":
        post_signup(client, topics=["data", "cyber-security"])
    elif kind == "subscribed":
        confirm(client, sign_up_for_link(client, mailbox, topics=["data", "cyber-security"]))
    elif kind == "already subscribed":
        create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
        post_signup(client, topics=["data"], frequency="daily")
    else:
        create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
        submit(client, "/manage", {"email": "reader@example.com"})
    [message] = mailbox.deliver()
    return message


@pytest.mark.parametrize("kind", EMAIL_KINDS)
def test_html_part_has_its_css_inlined(kind, app, mailbox):
    body = html_part(_send(kind, app, mailbox))

    assert "<style" not in body.lower()
    assert 'style="' in body
    assert re.search(r'<a [^>]*style="[^"]*color', body), "links carry their own colour"


@pytest.mark.parametrize("kind", EMAIL_KINDS)
def test_text_part_carries_every_link_of_the_html_part(kind, app, mailbox):
    message = _send(kind, app, mailbox)
    hrefs = {html.unescape(href) for href in re.findall(r'href="([^"]+)"', html_part(message))}

    assert hrefs, "every email links somewhere"
    assert hrefs <= set(links(message))
    assert all(href.startswith("https://alerts.test/") for href in hrefs)


@pytest.mark.parametrize("kind", EMAIL_KINDS)
def test_every_email_has_the_headers_mail_clients_expect(kind, app, mailbox):
    message = _send(kind, app, mailbox)

    assert message["From"] == "Public Technology alerts <alerts@alerts.test>"
    assert message["To"] == "reader@example.com"
    assert re.fullmatch(r"<[^<>@\s]+@alerts\.test>", message["Message-ID"])
    sent = parsedate_to_datetime(message["Date"])
    assert abs(datetime.now(UTC) - sent) < timedelta(minutes=5)
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]


def test_each_email_has_its_own_message_id(app, mailbox):
    client = app.test_client()
    seed_topics(app)
    confirm(client, sign_up_for_link(client, mailbox))
    post_signup(client, "other@example.com")
    mailbox.deliver()
    messages = mailbox.all()
    assert len(messages) == 3
    assert len({m["Message-ID"] for m in messages}) == 3


def test_topic_names_are_escaped_in_html(client, app, mailbox):
    name = "<script>alert(1)</script>"
    create_topic(app, "scripted", name)
    path = sign_up_for_link(client, mailbox, topics=["scripted"])
    confirm_email = mailbox.all()[0]

    page = client.get(path)
    assert confirm(client, path).status_code == 200
    [welcome] = mailbox.deliver()

    for body in (html_part(confirm_email), html_part(welcome), page.get_data(as_text=True)):
        assert "<script>" not in body
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert name in text_part(welcome), "plain text shows the name as it is"
    assert name in html.unescape(page_text(page))


def test_line_breaks_in_a_topic_name_never_reach_the_headers(client, app, mailbox):
    create_topic(app, "data", "Data\r\nBcc: evil@example.com")
    path = sign_up_for_link(client, mailbox, topics=["data"])
    assert confirm(client, path).status_code == 200
    mailbox.deliver()

    messages = mailbox.all()
    assert len(messages) == 2
    for message in messages:
        subject = message["Subject"]
        assert "\r" not in subject and "\n" not in subject
        assert subject.endswith("Data Bcc: evil@example.com")
        assert message["Bcc"] is None
    for raw in (path.read_bytes() for path in mailbox.directory.glob("*.eml")):
        headers = raw.split(b"\r\n\r\n", 1)[0]
        assert not re.search(rb"(?mi)^bcc:", headers)
    assert link_path(messages[1], "/manage/")


@pytest.mark.parametrize("kind", ["confirm", "manage link"])
def test_copy_paste_link_wraps_on_narrow_screens(kind, app, mailbox):
    body = html_part(_send(kind, app, mailbox))

    [style] = re.findall(r'<a [^>]*style="([^"]*)"[^>]*>https://alerts\.test/[^<]+</a>', body)
    assert "word-break: break-all" in style
    assert "overflow-wrap: anywhere" in style
