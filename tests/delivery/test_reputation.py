"""The reputation guard: bounce and complaint rates over recent subscription emails pause
subscription mail past a threshold, never on a handful of sends, and confirmations go on."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import insert, select

from alertsvc.database import transaction
from alertsvc.delivery.pauses import resume
from alertsvc.delivery.reputation import Verdict, check_reputation, measure_reputation
from alertsvc.delivery.worker import Worker
from alertsvc.models import (
    DeliveryEvent,
    DeliveryEventKind,
    OutboxEmail,
    OutboxStatus,
    PauseScope,
    SendingPause,
    utcnow,
)
from tests.delivery.helpers import delivered_to, outbox_row, queue_digest_and_alert
from tests.factories import rows
from tests.subscriptions.helpers import post_signup

GUARD = {
    "REPUTATION_MIN_SENDS": 100,
    "REPUTATION_WINDOW_SENDS": 1000,
    "REPUTATION_WINDOW_SECONDS": 86400,
    "REPUTATION_BOUNCE_RATE": 0.025,
    "REPUTATION_COMPLAINT_RATE": 0.005,
}


def record_sends(
    app: Flask,
    count: int,
    *,
    bounced: int = 0,
    complained: int = 0,
    sent_at: datetime | None = None,
    subscription: bool = True,
    status: OutboxStatus = OutboxStatus.SENT,
) -> list[int]:
    """``count`` emails sent at ``sent_at``, the first ``bounced`` of them bounced for good
    and the next ``complained`` complained about, as SES's notifications record them."""
    sent_at = sent_at or utcnow()
    with app.app_context(), transaction() as session:
        ids = list(
            session.scalars(
                insert(OutboxEmail).returning(OutboxEmail.id),
                [
                    {
                        "template": "digest" if subscription else "manage_link",
                        "to_address": f"sent{n}@example.com",
                        "subject": "Your daily digest",
                        "context": {},
                        "unsubscribe_topic_ids": [1] if subscription else None,
                        "status": status,
                        "attempts": 1,
                        "created_at": sent_at,
                        "next_attempt_at": sent_at,
                        "sent_at": sent_at,
                        "provider_message_id": f"ses-{n}-{sent_at.timestamp()}",
                    }
                    for n in range(count)
                ],
            )
        )
        ids.sort()
        kinds = [DeliveryEventKind.PERMANENT_BOUNCE] * bounced + [
            DeliveryEventKind.COMPLAINT
        ] * complained
        if kinds:
            session.execute(
                insert(DeliveryEvent),
                [
                    {
                        "kind": kind,
                        "email": f"sent{n}@example.com",
                        "outbox_id": row_id,
                        "occurred_at": sent_at,
                    }
                    for n, (row_id, kind) in enumerate(zip(ids, kinds, strict=False))
                ],
            )
    return ids


def add_events(app: Flask, row_ids: list[int], kind: DeliveryEventKind) -> None:
    with app.app_context(), transaction() as session:
        session.execute(
            insert(DeliveryEvent),
            [
                {"kind": kind, "email": "x@example.com", "outbox_id": i, "occurred_at": utcnow()}
                for i in row_ids
            ],
        )


def measure(app: Flask):
    with app.app_context(), transaction():
        return measure_reputation(app.config, utcnow())


def check(app: Flask):
    with app.app_context(), transaction():
        return check_reputation(app.config, utcnow())


def pauses_in_force(app: Flask) -> list[tuple[str, str, str]]:
    return rows(
        app,
        select(SendingPause.scope, SendingPause.paused_by, SendingPause.reason).where(
            SendingPause.resumed_at.is_(None)
        ),
    )


def test_bounce_rate_at_the_threshold_pauses_subscription_mail_below_it_does_not(app_with, caplog):
    app = app_with(**GUARD)
    sent = record_sends(app, 200, bounced=4, status=OutboxStatus.DELIVERED)

    below = check(app)

    assert (below.sends, below.bounces, below.complaints) == (200, 4, 0)
    assert below.bounce_rate == 0.02
    assert below.verdict is Verdict.HEALTHY and not below.paused
    assert pauses_in_force(app) == []

    add_events(app, [sent[150]], DeliveryEventKind.PERMANENT_BOUNCE)
    with caplog.at_level(logging.ERROR):
        at_threshold = check(app)

    assert at_threshold.verdict is Verdict.TRIPPED and at_threshold.paused
    reason = (
        "bounce rate 2.50% (5 of the last 200 subscription emails) is at or above "
        "the threshold of 2.50%"
    )
    assert pauses_in_force(app) == [("subscriptions", "reputation guard", reason)]
    [logged] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert reason in logged.getMessage() and "REPUTATION GUARD" in logged.getMessage()

    again = check(app)
    assert again.verdict is Verdict.TRIPPED and not again.paused, "recorded once"
    assert len(pauses_in_force(app)) == 1


def test_complaint_rate_past_the_threshold_pauses_too(app_with):
    app = app_with(**GUARD)
    record_sends(app, 400, complained=2)
    report = check(app)
    assert (report.complaints, report.complaint_rate) == (2, 0.005)
    [(scope, _, reason)] = pauses_in_force(app)
    assert scope == "subscriptions"
    assert reason.startswith("complaint rate 0.50% (2 of the last 400 subscription emails)")


def test_a_handful_of_sends_never_trips_the_guard(app_with):
    app = app_with(**GUARD)
    record_sends(app, 99, bounced=50, complained=20)
    report = check(app)
    assert (report.sends, report.bounces) == (99, 50)
    assert report.verdict is Verdict.TOO_FEW_SENDS and not report.paused
    assert pauses_in_force(app) == []


def test_only_recent_subscription_emails_count(app_with):
    app = app_with(**{**GUARD, "REPUTATION_WINDOW_SENDS": 300})
    now = utcnow()
    # Bounced, but older than the window's time ...
    record_sends(app, 100, bounced=100, sent_at=now - timedelta(days=2))
    # ... or not among its 300 most recent sends ...
    record_sends(app, 100, bounced=100, sent_at=now - timedelta(hours=3))
    # ... or not subscription mail (a confirmation to a mistyped address) ...
    record_sends(app, 100, bounced=100, subscription=False)
    # ... or not sent at all.
    record_sends(app, 100, bounced=100, status=OutboxStatus.FAILED)
    record_sends(app, 300, bounced=3, sent_at=now - timedelta(hours=1))

    report = check(app)

    assert (report.sends, report.bounces) == (300, 3)
    assert report.verdict is Verdict.HEALTHY
    assert pauses_in_force(app) == []


def test_an_email_with_several_events_counts_once(app_with):
    app = app_with(**GUARD)
    sent = record_sends(app, 100, bounced=2)
    add_events(app, sent[:2], DeliveryEventKind.PERMANENT_BOUNCE)
    add_events(app, sent[2:3], DeliveryEventKind.TRANSIENT_BOUNCE)
    add_events(app, sent[3:4], DeliveryEventKind.DELIVERY)
    assert (measure(app).sends, measure(app).bounces) == (100, 2)


def test_worker_trips_the_guard_holds_digests_and_alerts_and_confirmation_still_goes(
    app_with, mail_dir
):
    app = app_with(**GUARD)
    record_sends(app, 100, bounced=3)
    digest_row, alert_row = queue_digest_and_alert(app)
    post_signup(app.test_client(), "new@example.com")

    totals = Worker(app, burst=True).run()

    assert totals.sent == 1
    assert delivered_to(mail_dir) == ["new@example.com"]
    [(scope, by, reason)] = pauses_in_force(app)
    assert (scope, by) == ("subscriptions", "reputation guard")
    assert reason.startswith("bounce rate 3.00% (3 of the last 100 subscription emails)")
    for row_id in (digest_row, alert_row):
        assert outbox_row(app, row_id).status == OutboxStatus.QUEUED

    status = app.test_cli_runner().invoke(args=["sending", "status"])
    assert status.exit_code == 0, status.output
    assert (
        "Sending: subscription emails (digests and alerts) paused since " in status.output
        and f"by reputation guard: {reason}" in status.output
    )
    assert "bounce rate 3.00% (3; threshold 2.50%)" in status.output
    assert "  past a threshold" in status.output

    # The guard never resumes by itself, however good the rates look later.
    record_sends(app, 900)
    assert Worker(app, burst=True).run().sent == 0
    assert len(pauses_in_force(app)) == 1

    assert app.test_cli_runner().invoke(args=["sending", "resume"]).exit_code == 0
    assert Worker(app, burst=True).run().sent == 2


def test_a_failing_reputation_check_is_logged_and_the_worker_sends_on(app_with, mail_dir, caplog):
    # A window too long for any date: the check fails on every turn.
    app = app_with(REPUTATION_WINDOW_SECONDS=10**15)
    queue_digest_and_alert(app)

    with caplog.at_level(logging.ERROR):
        totals = Worker(app, burst=True).run()

    assert totals.sent == 2
    assert delivered_to(mail_dir) == ["alert@example.com", "digest@example.com"]
    assert any("the reputation check failed" in record.getMessage() for record in caplog.records)


def test_after_an_operator_resumes_only_later_sends_count(app_with):
    """Resuming would be pointless if the guard paused again at once on the same bounces."""
    app = app_with(**GUARD)
    record_sends(app, 200, bounced=10, sent_at=utcnow() - timedelta(minutes=5))
    assert check(app).paused
    with app.app_context(), transaction():
        assert resume(PauseScope.SUBSCRIPTIONS, "operator", utcnow()) == 1

    after_resume = check(app)

    assert (after_resume.sends, after_resume.verdict) == (0, Verdict.TOO_FEW_SENDS)
    assert pauses_in_force(app) == []

    record_sends(app, 100, bounced=3)
    assert check(app).paused, "new bounces after the resume still trip it"
