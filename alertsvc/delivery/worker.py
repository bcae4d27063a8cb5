"""The outbox worker: claim a batch, send it with a thread pool, record what happened."""

from __future__ import annotations

import logging
import random
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from types import FrameType
from typing import Any

from flask import Flask, current_app
from sqlalchemy import and_, bindparam, func, or_, select, update

from alertsvc.database import transaction
from alertsvc.delivery.messages import build_message
from alertsvc.delivery.outbox import row_message_id
from alertsvc.delivery.transports import SendError, Transport, make_transport
from alertsvc.extensions import db
from alertsvc.models import EmailBody, OutboxEmail, OutboxStatus, Subscriber, utcnow

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0

    @property
    def claimed(self) -> int:
        return self.sent + self.retried + self.failed


@dataclass
class WorkerTotals:
    batches: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0

    def add(self, result: BatchResult) -> None:
        self.batches += 1
        self.sent += result.sent
        self.retried += result.retried
        self.failed += result.failed


def claim_outbox_batch(limit: int, lease_seconds: int, now: datetime) -> list[OutboxEmail]:
    """Take up to ``limit`` due rows in one statement and lease them to this worker.

    Due means queued and past ``next_attempt_at``, or still ``sending`` under a lease that
    ran out (its worker died). On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets many workers
    claim at once without waiting on or taking each other's rows; SQLite has one writer at
    a time, so the same statement is safe there without it.
    """
    due = (
        select(OutboxEmail.id)
        .where(
            or_(
                and_(
                    OutboxEmail.status == OutboxStatus.QUEUED,
                    OutboxEmail.next_attempt_at <= now,
                ),
                and_(
                    OutboxEmail.status == OutboxStatus.SENDING,
                    OutboxEmail.lease_expires_at < now,
                ),
            )
        )
        .order_by(OutboxEmail.next_attempt_at, OutboxEmail.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claim = (
        update(OutboxEmail)
        .where(OutboxEmail.id.in_(due.scalar_subquery()))
        .values(
            status=OutboxStatus.SENDING,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=OutboxEmail.attempts + 1,
            # Digest and alert rows are queued without address or subject: take them now,
            # from the subscriber as they are and from the shared body, and keep them.
            to_address=func.coalesce(
                OutboxEmail.to_address,
                select(Subscriber.email)
                .where(Subscriber.id == OutboxEmail.subscriber_id)
                .scalar_subquery(),
            ),
            subject=func.coalesce(
                OutboxEmail.subject,
                select(EmailBody.subject)
                .where(EmailBody.id == OutboxEmail.body_id)
                .scalar_subquery(),
            ),
        )
        .returning(OutboxEmail)
        .execution_options(synchronize_session=False)
    )
    rows = list(db.session.scalars(claim))
    rows.sort(key=lambda row: row.id)
    for row in rows:
        if row.message_id is None:
            row.message_id = row_message_id(row.id, row.created_at)
    return rows


def retry_delay(attempts: int, base: float, cap: float) -> timedelta:
    """Exponential backoff with full jitter (AWS architecture blog's recommendation)."""
    ceiling = min(cap, base * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=random.uniform(base / 2, max(ceiling, base / 2)))


def _send(transport: Transport, message: EmailMessage) -> tuple[str | None, SendError | None]:
    try:
        return transport.send(message), None
    except SendError as error:
        return None, error
    except Exception as error:
        log.exception("transport raised an unexpected error")
        return None, SendError(f"{type(error).__name__}: {error}")


def send_outbox_batch(transport: Transport, pool: ThreadPoolExecutor) -> BatchResult:
    """Claim, send and record one batch. Returns what happened to it.

    Claiming and recording are two short transactions; no transaction is held open while
    the transport talks to the network.
    """
    config = current_app.config
    with transaction() as session:
        rows = claim_outbox_batch(
            config["WORKER_BATCH_SIZE"], config["WORKER_LEASE_SECONDS"], utcnow()
        )
        session.expunge_all()
    if not rows:
        return BatchResult()

    body_ids = {row.body_id for row in rows if row.body_id is not None}
    bodies = (
        {
            body.id: body
            for body in db.session.scalars(select(EmailBody).where(EmailBody.id.in_(body_ids)))
        }
        if body_ids
        else {}
    )
    db.session.expunge_all()
    db.session.rollback()
    outcomes: dict[int, tuple[str | None, SendError | None]] = {}
    futures = {}
    for row in rows:
        try:
            message = build_message(row, bodies.get(row.body_id) if row.body_id else None)
        except Exception as error:
            log.exception("could not build outbox email %s", row.id)
            outcomes[row.id] = (None, SendError(f"could not build message: {error}"))
            continue
        futures[row.id] = pool.submit(_send, transport, message)
    for row_id, future in futures.items():
        outcomes[row_id] = future.result()

    now = utcnow()
    result = BatchResult()
    changes: list[dict[str, Any]] = []
    for row in rows:
        provider_id, error = outcomes[row.id]
        change: dict[str, Any] = {
            "row_id": row.id,
            "our_lease": row.lease_expires_at,
            "lease_expires_at": None,
            "message_id": row.message_id,
            "sent_at": None,
            "provider_message_id": None,
            "next_attempt_at": row.next_attempt_at,
            "last_error": None,
        }
        if error is None:
            change.update(
                status=OutboxStatus.SENT,
                sent_at=now,
                provider_message_id=provider_id,
                last_error=None,
            )
            result.sent += 1
        elif error.transient and row.attempts < config["WORKER_MAX_ATTEMPTS"]:
            delay = retry_delay(
                row.attempts,
                config["WORKER_BACKOFF_BASE_SECONDS"],
                config["WORKER_BACKOFF_MAX_SECONDS"],
            )
            change.update(
                status=OutboxStatus.QUEUED, next_attempt_at=now + delay, last_error=str(error)
            )
            result.retried += 1
        else:
            change.update(status=OutboxStatus.FAILED, last_error=str(error))
            result.failed += 1
            log.warning("outbox email %s failed: %s", row.id, error)
        changes.append(change)
    _record(changes)
    return result


def _record(changes: list[dict[str, Any]]) -> None:
    """Write what happened to each row, unless its lease ran out and another worker took it.

    A row is recorded only while it still carries this worker's lease: a worker slower than
    ``WORKER_LEASE_SECONDS`` must not overwrite the result of the one that took over.
    """
    record = (
        update(OutboxEmail)
        .where(
            OutboxEmail.id == bindparam("row_id"),
            OutboxEmail.status == OutboxStatus.SENDING,
            OutboxEmail.lease_expires_at == bindparam("our_lease"),
        )
        .values(
            {
                column: bindparam(column)
                for column in (
                    "status",
                    "lease_expires_at",
                    "message_id",
                    "sent_at",
                    "provider_message_id",
                    "next_attempt_at",
                    "last_error",
                )
            }
        )
    )
    with transaction() as session:
        for change in changes:
            if session.execute(record, change).rowcount == 0:
                log.warning(
                    "outbox email %s: lease ran out before its result was recorded; "
                    "left to the worker that took it over",
                    change["row_id"],
                )


class StopSignal:
    """First SIGTERM/SIGINT: finish the batch in hand, then stop. Second: stop at once."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set():
            raise SystemExit(1)
        log.info("stopping after the current batch (signal again to stop now)")
        self.event.set()


@dataclass
class Worker:
    app: Flask
    burst: bool = False
    stop: StopSignal = field(default_factory=StopSignal)

    def run(self) -> WorkerTotals:
        """Send until stopped, or, in burst mode, until nothing is due."""
        totals = WorkerTotals()
        config = self.app.config
        transport = make_transport(self.app)
        with ThreadPoolExecutor(config["WORKER_THREADS"], "alertsvc-send") as pool:
            while not self.stop.event.is_set():
                with self.app.app_context():
                    result = send_outbox_batch(transport, pool)
                if result.claimed:
                    totals.add(result)
                elif self.burst:
                    break
                else:
                    self.stop.event.wait(config["WORKER_POLL_SECONDS"])
        return totals
