"""Helpers for the delivery tests: read outbox rows back, move time, run one batch."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from flask import Flask
from sqlalchemy import select, update

from alertsvc.database import transaction
from alertsvc.delivery.transports import Transport
from alertsvc.delivery.worker import BatchResult, send_outbox_batch
from alertsvc.extensions import db
from alertsvc.models import OutboxEmail, utcnow
from tests.factories import rows


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
