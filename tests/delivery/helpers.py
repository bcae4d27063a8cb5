"""Helpers for the delivery tests: queue outbox rows, read them back, run one batch."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select, update

from alertsvc.database import transaction
from alertsvc.delivery.outbox import queue_email
from alertsvc.delivery.transports import Transport
from alertsvc.delivery.worker import BatchResult, send_outbox_batch
from alertsvc.extensions import db
from alertsvc.models import OutboxEmail, Subscriber, utcnow
from tests.factories import create_subscriber, rows


def queue_manage_link(app: Flask, email: str = "reader@example.com", **row_fields: Any) -> int:
    """A subscriber and a queued "manage your email alerts" email to them; returns the row id.

    ``row_fields`` set outbox columns directly (``template``, ``status``, ``next_attempt_at`` …)
    to stage a row as a worker would have left it.
    """
    subscriber_id = create_subscriber(app, email)
    with app.app_context(), transaction():
        row = queue_email(
            template="manage_link",
            to_address=email,
            subject="Manage your email alerts",
            subscriber_id=subscriber_id,
        )
        for name, value in row_fields.items():
            setattr(row, name, value)
        db.session.flush()
        return row.id


def queue_manage_links(app: Flask, count: int, domain: str = "example.com") -> list[int]:
    """``count`` subscribers, each with a queued email, in one transaction; returns row ids."""
    with app.app_context(), transaction():
        queued = []
        for number in range(count):
            email = f"reader{number}@{domain}"
            subscriber = Subscriber(email=email, confirmed_at=utcnow())
            db.session.add(subscriber)
            db.session.flush()
            queued.append(
                queue_email(
                    template="manage_link",
                    to_address=email,
                    subject="Manage your email alerts",
                    subscriber_id=subscriber.id,
                )
            )
        db.session.flush()
        return [row.id for row in queued]


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
