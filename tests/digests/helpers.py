"""Drivers for digest and alert tests: times, runs, backdating; rows come from tests.factories."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from alertsvc.digests.alerts import AlertResult
from alertsvc.digests.jobs import plan_run, run_immediate_alerts
from alertsvc.digests.planning import PlanResult
from alertsvc.extensions import db
from alertsvc.models import OutboxEmail, Subscriber, Subscription

# Where a queued email goes: digest rows take their address when a worker claims them.
RECIPIENT = func.coalesce(
    OutboxEmail.to_address,
    select(Subscriber.email).where(Subscriber.id == OutboxEmail.subscriber_id).scalar_subquery(),
)


def at(text: str) -> datetime:
    """A UTC instant from ``2026-11-25T07:00``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def start_subscriptions_at(app: Flask, subscriber_id: int, moment: datetime) -> None:
    """Backdate a subscriber's subscriptions, as if they had subscribed at ``moment``."""
    with app.app_context():
        for subscription in db.session.scalars(
            select(Subscription).where(Subscription.subscriber_id == subscriber_id)
        ):
            subscription.created_at = moment
            subscription.delivered_until = moment
        db.session.commit()


def digest(app: Flask, frequency: str, window_end: datetime, **options: Any) -> PlanResult:
    with app.app_context():
        return plan_run(frequency, window_end, **options)


def alerts(app: Flask, now: datetime) -> AlertResult:
    with app.app_context():
        return run_immediate_alerts(now)
