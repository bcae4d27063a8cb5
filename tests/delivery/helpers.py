"""Helpers for the delivery tests: read outbox rows back, move time, run one batch."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from flask import Flask
from sqlalchemy import select, update

from alertsvc.database import transaction
from alertsvc.delivery.transports import Transport
from alertsvc.delivery.worker import BatchResult, send_outbox_batch
from alertsvc.extensions import db
from alertsvc.models import OutboxEmail, SendingPause, Suppression, SuppressionReason, utcnow
from tests.digests.helpers import alerts, at, digest, start_subscriptions_at
from tests.factories import create_article, create_subscriber, rows, seed_topics
from tests.mail import read_message


def outbox_row(app: Flask, row_id: int) -> OutboxEmail:
    [row] = rows(app, select(OutboxEmail).where(OutboxEmail.id == row_id))
    return row


def statuses(app: Flask) -> dict[int, str]:
    return dict(rows(app, select(OutboxEmail.id, OutboxEmail.status)))


def make_due(app: Flask, *row_ids: int) -> None:
    """Let time pass: the rows' retry time is now in the past."""
    with app.app_context(), transaction() as session:
        session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.id.in_(row_ids))
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


def expire_lease(app: Flask, *row_ids: int) -> None:
    """Let time pass: the rows' lease has run out (as when the worker sending them died)."""
    with app.app_context(), transaction() as session:
        session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.id.in_(row_ids))
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


def send_batch(app: Flask, transport: Transport) -> BatchResult:
    """One claim-send-record round through ``transport``, as the worker does it."""
    with app.app_context(), ThreadPoolExecutor(2) as pool:
        result = send_outbox_batch(transport, pool)
        db.session.remove()
    return result


def suppress(app: Flask, email: str, reason: SuppressionReason = SuppressionReason.BOUNCE) -> None:
    with app.app_context(), transaction() as session:
        session.add(Suppression(email=email, reason=reason, source="ses", detail="test"))


def delivered_to(mail_dir: Path) -> list[str]:
    return sorted(str(read_message(path)["To"]) for path in mail_dir.glob("*.eml"))


def queue_digest_and_alert(app: Flask) -> tuple[int, int]:
    """A daily digest to digest@example.com and an immediate alert to alert@example.com,
    queued the way the scheduler queues them (no address on the row); returns their ids."""
    topics = seed_topics(app)
    daily = create_subscriber(app, "digest@example.com", {topics["data"]: "daily"})
    instant = create_subscriber(app, "alert@example.com", {topics["data"]: "immediately"})
    for subscriber in (daily, instant):
        start_subscriptions_at(app, subscriber, at("2026-11-24T07:00"))
    create_article(app, "Open data strategy", [topics["data"]], at("2026-11-24T12:00"))
    create_article(
        app, "Breach at a council", [topics["data"]], at("2026-11-25T06:00"), alerted=False
    )
    assert alerts(app, at("2026-11-25T06:01")).emails == 1
    assert digest(app, "daily", at("2026-11-25T07:00")).emails == 1
    # Only the two just queued (they have a subscriber), whatever else the test put in the
    # outbox: the order rows come back in is the database's to choose.
    by_template = dict(
        rows(
            app,
            select(OutboxEmail.template, OutboxEmail.id)
            .where(OutboxEmail.subscriber_id.is_not(None))
            .order_by(OutboxEmail.id),
        )
    )
    return by_template["digest"], by_template["alert"]


def pauses(app: Flask) -> list[tuple[str, str, str, bool]]:
    """(scope, paused_by, reason, in force) of every pause recorded, oldest first."""
    return [
        (scope, by, reason, resumed_at is None)
        for scope, by, reason, resumed_at in rows(
            app,
            select(
                SendingPause.scope,
                SendingPause.paused_by,
                SendingPause.reason,
                SendingPause.resumed_at,
            ).order_by(SendingPause.id),
        )
    ]
