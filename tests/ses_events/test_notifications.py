"""SES notifications, signed as SNS signs them, posted to /ses/events: what they change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from alertsvc.database import transaction
from alertsvc.delivery.outbox import queue_email
from alertsvc.delivery.transports import FileTransport
from alertsvc.extensions import db
from alertsvc.models import DeliveryEvent, OutboxEmail, SnsMessage, Suppression, Topic, utcnow
from tests.delivery.helpers import send_batch
from tests.factories import create_subscriber, queue_manage_link, rows, seed_topics, stored_state
from tests.factories import subscription_history as history
from tests.ses_events.helpers import (
    SES_MESSAGE_ID,
    notification,
    ses_bounce,
    ses_complaint,
    ses_delivery,
    sign,
)

READER = "reader@example.com"


def _suppressions(app):
    return rows(
        app,
        select(
            Suppression.email, Suppression.reason, Suppression.source, Suppression.detail
        ).order_by(Suppression.email),
    )


def _events(app):
    return rows(
        app,
        select(
            DeliveryEvent.kind,
            DeliveryEvent.email,
            DeliveryEvent.outbox_id,
            DeliveryEvent.provider_message_id,
            DeliveryEvent.occurred_at,
            DeliveryEvent.detail,
        ).order_by(DeliveryEvent.id),
    )


def _reader_with_two_topics(app) -> int:
    topics = seed_topics(app)
    return create_subscriber(
        app, READER, {topics["data"]: "daily", topics["cyber-security"]: "weekly"}
    )


def _sent_row(app, email: str = READER, status: str = "sent") -> int:
    """An outbox row a worker sent through SES, which answered ``SES_MESSAGE_ID``."""
    with app.app_context(), transaction():
        row = queue_email(
            template="manage_link", to_address=email, subject="Manage your email alerts"
        )
        row.status = status
        row.provider_message_id = SES_MESSAGE_ID
        row.sent_at = utcnow()
        db.session.flush()
        return row.id


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_permanent_bounce_suppresses_the_address_and_ends_its_subscriptions(
    version, sns_app, cached, post
):
    subscriber_id = _reader_with_two_topics(sns_app)
    [data_topic, *_] = rows(sns_app, select(Topic.id).order_by(Topic.id))
    other_id = create_subscriber(sns_app, "other@example.com", {data_topic: "daily"})
    row_id = _sent_row(sns_app)

    response = post(sign(notification(ses_bounce("Reader@Example.com")), cached, version))

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json == {"result": "handled"}
    assert _suppressions(sns_app) == [
        ("reader@example.com", "bounce", "ses", "Permanent General: smtp; 550 5.1.1 user unknown")
    ]
    assert [state for _, _, state in history(sns_app, subscriber_id)] == ["bounced", "bounced"]
    assert [state for _, _, state in history(sns_app, other_id)] == ["live"]
    assert _events(sns_app) == [
        (
            "permanent_bounce",
            READER,
            row_id,
            SES_MESSAGE_ID,
            datetime(2026, 11, 30, 9, 0, 1, 669000, tzinfo=UTC),
            "Permanent General: smtp; 550 5.1.1 user unknown",
        )
    ]
    assert rows(sns_app, select(SnsMessage.message_id, SnsMessage.message_type)) == [
        ("d1d2c3a4-0000-4000-8000-000000000001", "Notification")
    ]


def test_a_replayed_message_changes_nothing(sns_app, cached, post):
    _reader_with_two_topics(sns_app)
    body = sign(notification(ses_bounce(READER, bounce_type="Transient")), cached, "2")
    assert post(body).status_code == 200
    before = stored_state(sns_app)

    response = post(body)

    assert response.status_code == 200
    assert response.json == {"result": "duplicate"}
    assert stored_state(sns_app) == before
    assert len(_events(sns_app)) == 1


def test_a_complaint_suppresses_and_ends_subscriptions_as_complained(sns_app, cached, post):
    subscriber_id = _reader_with_two_topics(sns_app)

    response = post(sign(notification(ses_complaint(READER, event_publishing=True)), cached))

    assert response.status_code == 200
    assert _suppressions(sns_app) == [(READER, "complaint", "ses", "complaint: abuse")]
    assert [state for _, _, state in history(sns_app, subscriber_id)] == [
        "complained",
        "complained",
    ]
    [event] = _events(sns_app)
    assert event[0] == "complaint"
    assert event[4] == datetime(2026, 11, 30, 9, 5, 1, tzinfo=UTC)


def test_a_complaint_in_notification_format_too(sns_app, cached, post):
    response = post(sign(notification(ses_complaint(READER, event_publishing=False)), cached))

    assert response.status_code == 200
    assert _suppressions(sns_app) == [(READER, "complaint", "ses", "complaint: abuse")]


def test_a_later_complaint_keeps_the_first_reason(sns_app, cached, post):
    post(sign(notification(ses_bounce(READER)), cached))

    post(sign(notification(ses_complaint(READER), message_id="second"), cached))

    assert [reason for _, reason, _, _ in _suppressions(sns_app)] == ["bounce"]
    assert [event[0] for event in _events(sns_app)] == ["permanent_bounce", "complaint"]


@pytest.mark.parametrize("event_publishing", [False, True])
def test_a_delivery_marks_the_sent_message_delivered(event_publishing, sns_app, cached, post):
    row_id = _sent_row(sns_app)
    subscriber_id = _reader_with_two_topics(sns_app)

    response = post(
        sign(notification(ses_delivery(READER, event_publishing=event_publishing)), cached, "2")
    )

    assert response.status_code == 200
    [row] = rows(sns_app, select(OutboxEmail).where(OutboxEmail.id == row_id))
    assert row.status == "delivered"
    assert row.delivered_at == datetime(2026, 11, 30, 9, 0, 2, 184000, tzinfo=UTC)
    [event] = _events(sns_app)
    assert event[:4] == ("delivery", READER, row_id, SES_MESSAGE_ID)
    assert _suppressions(sns_app) == []
    assert [state for _, _, state in history(sns_app, subscriber_id)] == ["live", "live"]


def test_a_delivery_changes_only_a_sent_message(sns_app, cached, post):
    row_id = _sent_row(sns_app, status="failed")

    post(sign(notification(ses_delivery(READER)), cached))

    [row] = rows(sns_app, select(OutboxEmail).where(OutboxEmail.id == row_id))
    assert (row.status, row.delivered_at) == ("failed", None)
    assert [event[:3] for event in _events(sns_app)] == [("delivery", READER, row_id)]


def test_a_delivery_of_a_message_we_do_not_know_is_recorded_without_a_row(sns_app, cached, post):
    queue_manage_link(sns_app, READER)

    post(sign(notification(ses_delivery(READER, message_id="not-ours")), cached))

    assert [event[:4] for event in _events(sns_app)] == [("delivery", READER, None, "not-ours")]
    assert rows(sns_app, select(OutboxEmail.status)) == ["queued"]


def _transient(sns_app, cached, post, number: int, when: datetime | None = None):
    bounce = ses_bounce(
        READER,
        bounce_type="Transient",
        sub_type="MailboxFull",
        diagnostic="smtp; 452 4.2.2 mailbox full",
        timestamp=(when or utcnow()).isoformat(),
    )
    response = post(sign(notification(bounce, message_id=f"transient-{number}"), cached))
    assert response.status_code == 200


def test_transient_bounces_suppress_at_the_limit_within_the_window(sns_app, cached, post):
    """TRANSIENT_BOUNCE_LIMIT is 3 within 7 days by default."""
    subscriber_id = _reader_with_two_topics(sns_app)
    _transient(sns_app, cached, post, 0, utcnow() - timedelta(days=8))
    _transient(sns_app, cached, post, 1)
    _transient(sns_app, cached, post, 2)

    assert _suppressions(sns_app) == []
    assert [state for _, _, state in history(sns_app, subscriber_id)] == ["live", "live"]
    assert [event[0] for event in _events(sns_app)] == ["transient_bounce"] * 3

    _transient(sns_app, cached, post, 3)

    assert _suppressions(sns_app) == [
        (
            READER,
            "transient_bounces",
            "ses",
            "3 soft bounces within 7 days; the last: "
            "Transient MailboxFull: smtp; 452 4.2.2 mailbox full",
        )
    ]
    assert [state for _, _, state in history(sns_app, subscriber_id)] == ["bounced", "bounced"]


def test_an_undetermined_bounce_counts_as_transient(sns_app, cached, post):
    post(sign(notification(ses_bounce(READER, bounce_type="Undetermined")), cached))

    assert [event[0] for event in _events(sns_app)] == ["transient_bounce"]
    assert _suppressions(sns_app) == []


@pytest.mark.parametrize(
    "message",
    [
        "Hello from someone else's publisher",
        '{"notificationType": "AmazonSnsSubscriptionSucceeded", "message": "ok"}',
        '{"eventType": "Open", "mail": {}, "open": {}}',
        '{"notificationType": "Bounce", "mail": {}}',
        '{"notificationType": "Bounce", "bounce": {"bouncedRecipients": [{"x": 1}]}}',
        "[" * 50000,
    ],
)
def test_a_verified_message_that_is_not_an_ses_notification_is_recorded_and_ignored(
    message, sns_app, cached, post
):
    response = post(sign(notification(message), cached))

    assert response.status_code == 200
    assert rows(sns_app, select(SnsMessage.message_id)) == ["d1d2c3a4-0000-4000-8000-000000000001"]
    assert _events(sns_app) == []
    assert _suppressions(sns_app) == []


def test_a_subject_is_part_of_what_is_signed(sns_app, cached, post):
    response = post(
        sign(notification(ses_delivery(READER), subject="Amazon SES Email Event"), cached)
    )

    assert response.status_code == 200
    assert len(_events(sns_app)) == 1


def test_a_large_notification_within_sns_limits_is_accepted(sns_app, cached, post):
    """SNS carries up to 256 KiB, more than the site's form limit: the route has its own."""
    bounce = ses_bounce(READER)
    bounce["mail"]["headers"] += [{"name": "X-Padding", "value": "x" * 1000}] * 200

    response = post(sign(notification(bounce), cached))

    assert response.status_code == 200
    assert _suppressions(sns_app)[0][:2] == (READER, "bounce")


def test_mail_queued_to_a_bounced_address_ends_suppressed_and_is_not_sent(
    sns_app, cached, post, mailbox
):
    """The whole path: SES reports the bounce, and the worker never mails the address again."""
    _reader_with_two_topics(sns_app)
    post(sign(notification(ses_bounce(READER)), cached))
    with sns_app.app_context(), transaction():
        row = queue_email(template="manage_link", to_address=READER, subject="Manage")
        db.session.flush()
        row_id = row.id

    assert mailbox.deliver() == []
    assert rows(sns_app, select(OutboxEmail.status).where(OutboxEmail.id == row_id)) == [
        "suppressed"
    ]


class ReportedAtOnce:
    """The file transport, with SES reporting the delivery before the send has returned:
    as happens when a batch takes seconds to send and the recipient's server is quick."""

    def __init__(self, mail_dir, post, signer):
        self.file = FileTransport(mail_dir)
        self.post = post
        self.signer = signer

    def send(self, message):
        provider_id = f"ses-{self.file.send(message)}"
        recipient = str(message["To"])
        body = notification(ses_delivery(recipient, message_id=provider_id), message_id="early")
        assert self.post(sign(body, self.signer)).status_code == 200
        return provider_id

    def max_send_rate(self):
        return None

    def close(self):
        pass


def test_a_delivery_reported_before_the_send_is_recorded_still_marks_it_delivered(
    sns_app, cached, post, mail_dir
):
    row_id = queue_manage_link(sns_app, READER)

    result = send_batch(sns_app, ReportedAtOnce(mail_dir, post, cached))

    assert result.sent == 1
    [row] = rows(sns_app, select(OutboxEmail).where(OutboxEmail.id == row_id))
    assert row.status == "delivered"
    assert row.delivered_at == datetime(2026, 11, 30, 9, 0, 2, 184000, tzinfo=UTC)
    [event] = _events(sns_app)
    assert event[:4] == ("delivery", READER, row_id, row.provider_message_id)
