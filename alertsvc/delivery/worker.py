"""The outbox worker: claim a batch, send it with a thread pool, record what happened."""

from __future__ import annotations

import contextvars
import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from types import FrameType
from typing import Any

from flask import Flask, current_app
from sqlalchemy import (
    String,
    bindparam,
    case,
    cast,
    func,
    literal,
    not_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.orm.attributes import set_committed_value

from alertsvc.addresses import address_hash
from alertsvc.database import database_unavailable, transaction
from alertsvc.delivery.feedback import attach_feedback
from alertsvc.delivery.messages import ascii_address, build_message
from alertsvc.delivery.outbox import row_message_id
from alertsvc.delivery.pauses import pause, paused_scopes
from alertsvc.delivery.rate import SendRate
from alertsvc.delivery.reputation import check_reputation
from alertsvc.delivery.transports import SendError, SendingPausedError, Transport, make_transport
from alertsvc.delivery.wakeup import OUTBOX_CHANNEL, Wakeup
from alertsvc.extensions import db
from alertsvc.logs import job_context
from alertsvc.metrics import SEND_SECONDS, count_emails
from alertsvc.models import (
    EmailBody,
    OutboxEmail,
    OutboxStatus,
    PauseScope,
    Subscriber,
    Suppression,
    utcnow,
)
from alertsvc.text import plural

log = logging.getLogger(__name__)

PAUSED_BY_SES = "ses"
# After failing to reach the database, the worker waits this long before trying again,
# doubling up to the maximum.
DATABASE_RETRY_SECONDS = 0.5
DATABASE_RETRY_MAX_SECONDS = 4.0


@dataclass
class BatchResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    # Not sent and never will be: the address is on the suppression list.
    suppressed: int = 0
    # Put back in the queue unsent, the attempt not counted: sending was paused mid-batch.
    held: int = 0
    # The pauses in force when the batch was claimed (and ALL, if SES paused it meanwhile).
    paused: frozenset[PauseScope] = frozenset()

    @property
    def claimed(self) -> int:
        return self.sent + self.retried + self.failed + self.suppressed + self.held


@dataclass
class WorkerTotals:
    batches: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    suppressed: int = 0
    held: int = 0
    # The pauses in force at the last claim.
    paused: frozenset[PauseScope] = frozenset()

    def add(self, result: BatchResult) -> None:
        self.batches += 1
        self.sent += result.sent
        self.retried += result.retried
        self.failed += result.failed
        self.suppressed += result.suppressed
        self.held += result.held


LEASE_RAN_OUT = "lease ran out: the worker sending it died or hung"


def give_up_on_abandoned_rows(max_attempts: int, now: datetime) -> list[int]:
    """Fail the rows whose lease ran out for the ``max_attempts``-th time; returns their ids.

    A row whose worker keeps dying or hanging on it (a poison message) would otherwise be
    reclaimed and tried forever: each lease that runs out is counted (``lease_runouts``,
    the one that has just run out included), and at ``max_attempts`` the row ends
    ``failed`` with the reason, where an operator can see it. Sends that failed and were
    retried (throttling, timeouts) are not counted: the retry age bounds those, and a row
    SES throttled for an hour must not be failed by the first worker that then dies on it.
    """
    abandoned = (
        select(OutboxEmail.id)
        .where(
            OutboxEmail.status == OutboxStatus.SENDING,
            OutboxEmail.lease_expires_at < now,
            OutboxEmail.lease_runouts + 1 >= max_attempts,
        )
        .with_for_update(skip_locked=True)
    )
    give_up = (
        update(OutboxEmail)
        .where(OutboxEmail.id.in_(abandoned.scalar_subquery()))
        .values(
            status=OutboxStatus.FAILED,
            lease_expires_at=None,
            lease_runouts=OutboxEmail.lease_runouts + 1,
            last_error=literal("gave up after ")
            + cast(OutboxEmail.attempts, String)
            + literal(" attempts; on the last one the " + LEASE_RAN_OUT),
        )
        .returning(OutboxEmail.id, OutboxEmail.last_error)
        .execution_options(synchronize_session=False)
    )
    failed = db.session.execute(give_up).all()
    for row_id, reason in failed:
        log.warning("outbox email %s failed: %s", row_id, reason)
    return [row_id for row_id, _ in failed]


def claim_outbox_batch(
    limit: int,
    lease_seconds: int,
    now: datetime,
    max_attempts: int | None = None,
    paused: frozenset[PauseScope] | set[PauseScope] = frozenset(),
) -> list[OutboxEmail]:
    """Take up to ``limit`` due rows in one statement and lease them to this worker.

    Due means queued and past ``next_attempt_at``, or still ``sending`` under a lease that
    ran out (its worker died) fewer than ``max_attempts`` times, this one included:
    ``give_up_on_abandoned_rows`` fails the others. ``paused`` holds back what the pauses
    in force stop: with ``ALL`` nothing is claimed; with ``SUBSCRIPTIONS`` subscription
    emails stay queued while confirmation and manage-link emails still go. On PostgreSQL
    ``FOR UPDATE SKIP LOCKED`` lets many workers claim at once without waiting on or taking
    each other's rows; SQLite has one writer at a time, so the same statement is safe there
    without it.

    A row claimed for the first time is given its Message-ID here, in the claim's
    transaction, so that every later attempt sends the same one.
    """
    if PauseScope.ALL in paused:
        return []
    held_back = (
        not_(OutboxEmail.is_subscription_email) if PauseScope.SUBSCRIPTIONS in paused else true()
    )
    # Two queries, each able to walk ix_outbox_claim (status, next_attempt_at, id) in order
    # and stop at ``limit``: one OR across both would read and sort every queued row of a
    # digest run (a quarter of a second a batch at 400,000 rows). Rows whose lease ran out
    # are few; a batch may hold up to ``limit`` of them besides.
    queued = (
        select(OutboxEmail.id)
        .where(
            held_back,
            OutboxEmail.status == OutboxStatus.QUEUED,
            OutboxEmail.next_attempt_at <= now,
        )
        .order_by(OutboxEmail.next_attempt_at, OutboxEmail.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    abandoned = (
        select(OutboxEmail.id)
        .where(
            held_back,
            OutboxEmail.status == OutboxStatus.SENDING,
            OutboxEmail.lease_expires_at < now,
            true() if max_attempts is None else OutboxEmail.lease_runouts + 1 < max_attempts,
        )
        .order_by(OutboxEmail.next_attempt_at, OutboxEmail.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claim = (
        update(OutboxEmail)
        .where(
            OutboxEmail.id.in_(
                # A UNION ALL of the two, so PostgreSQL looks the claimed ids up by key; an
                # OR of two IN lists would scan the whole table.
                select(
                    union_all(select(queued.subquery().c.id), select(abandoned.subquery().c.id))
                    .subquery()
                    .c.id
                )
            )
        )
        .values(
            status=OutboxStatus.SENDING,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=OutboxEmail.attempts + 1,
            lease_runouts=case(
                (OutboxEmail.status == OutboxStatus.SENDING, OutboxEmail.lease_runouts + 1),
                else_=OutboxEmail.lease_runouts,
            ),
            # A row taken over from a worker that died says so until this attempt ends.
            last_error=case(
                (OutboxEmail.status == OutboxStatus.SENDING, LEASE_RAN_OUT),
                else_=OutboxEmail.last_error,
            ),
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
    message_ids = {
        row.id: row_message_id(row.id, row.created_at) for row in rows if row.message_id is None
    }
    if message_ids:
        outbox = OutboxEmail.__table__
        db.session.execute(
            update(outbox)
            .where(outbox.c.id == bindparam("row_id"))
            .values(message_id=bindparam("message_id")),
            [{"row_id": row_id, "message_id": value} for row_id, value in message_ids.items()],
        )
        for row in rows:
            if row.id in message_ids:
                set_committed_value(row, "message_id", message_ids[row.id])
    return rows


def suppress_claimed_rows(rows: list[OutboxEmail]) -> list[int]:
    """End the claimed rows addressed to a suppressed address as ``suppressed``, unsent;
    returns their ids.

    Run after the claim has filled in digest rows' addresses. Each row is compared in the
    form it would be sent to (``ascii_address``): a subscriber stored before addresses were
    stored in ASCII still has a Unicode domain, while the suppression list holds the ASCII
    form. One read of the list for the batch, one update per reason. The attempt the claim
    counted is taken back: nothing was attempted.
    """
    sent_to: dict[int, str] = {}
    for row in rows:
        if row.to_address is None:
            continue
        try:
            sent_to[row.id] = ascii_address(row.to_address).lower()
        except ValueError:
            sent_to[row.id] = row.to_address.lower()
    if not sent_to:
        return []
    # An erased subscriber's suppression is kept as a hash of the address only: look for
    # both forms in the one query.
    hashes = {address: address_hash(address) for address in set(sent_to.values())}
    reasons = dict(
        db.session.execute(
            select(Suppression.email, Suppression.reason).where(
                Suppression.email.in_(sorted({*hashes, *hashes.values()}))
            )
        ).all()
    )
    by_reason: dict[str, list[int]] = {}
    for row_id, address in sent_to.items():
        reason = reasons.get(address) or reasons.get(hashes[address])
        if reason is not None:
            by_reason.setdefault(reason, []).append(row_id)
    for reason, row_ids in by_reason.items():
        db.session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.id.in_(row_ids))
            .values(
                status=OutboxStatus.SUPPRESSED,
                lease_expires_at=None,
                attempts=OutboxEmail.attempts - 1,
                last_error=f"address suppressed: {reason}",
            )
            .execution_options(synchronize_session=False)
        )
    suppressed = sorted(row_id for row_ids in by_reason.values() for row_id in row_ids)
    if suppressed:
        log.info("outbox emails %s not sent: address suppressed", suppressed)
    return suppressed


def retry_delay(attempts: int, base: float, cap: float) -> timedelta:
    """Exponential backoff with full jitter (AWS architecture blog's recommendation)."""
    ceiling = min(cap, base * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=random.uniform(base / 2, max(ceiling, base / 2)))


def gave_up_reason(attempts: int, age: timedelta, error: SendError) -> str:
    hours = age.total_seconds() / 3600
    return f"gave up after {plural(attempts, 'attempt')} over {hours:.1f} hours: {error}"


@dataclass(frozen=True)
class SendOutcome:
    provider_message_id: str | None = None
    error: SendError | None = None
    # Not attempted: the provider paused sending before this message's turn, or the worker
    # stopped while it waited for its turn within the fleet's rate.
    skipped: bool = False

    @property
    def held(self) -> bool:
        """Goes back to the queue uncounted: never tried, or refused because of the pause."""
        return self.skipped or isinstance(self.error, SendingPausedError)


SKIPPED = SendOutcome(skipped=True)


def _send(
    transport: Transport,
    message: EmailMessage,
    paused: threading.Event,
    rate: SendRate | None = None,
) -> SendOutcome:
    if paused.is_set():
        return SKIPPED
    # Its turn within the fleet's rate; a worker stopping meanwhile puts it back untried.
    if rate is not None and (not rate.acquire() or paused.is_set()):
        return SKIPPED
    started = time.monotonic()
    try:
        return SendOutcome(provider_message_id=transport.send(message))
    except SendingPausedError as error:
        paused.set()
        return SendOutcome(error=error)
    except SendError as error:
        return SendOutcome(error=error)
    except Exception as error:
        log.exception("transport raised an unexpected error")
        return SendOutcome(error=SendError(f"{type(error).__name__}: {error}"))
    finally:
        SEND_SECONDS.observe(time.monotonic() - started)


class LeaseHeartbeat:
    """Keeps a batch's lease alive while it is being sent, so a slow send is never taken
    over and sent again by a second worker.

    Every third of the lease a thread of its own pushes ``lease_expires_at`` forward for the
    batch's rows that still carry this worker's lease; a row that no longer does (its lease
    ran out and another worker took it) is let go. ``lease`` is the lease the rows carry
    now: results are recorded against it, once the heartbeat has stopped.
    """

    def __init__(
        self, app: Flask, row_ids: list[int], lease: datetime | None, seconds: float
    ) -> None:
        self.app = app
        self.row_ids = set(row_ids)
        self.lease = lease
        self.seconds = seconds
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="alertsvc-lease", daemon=True)

    def __enter__(self) -> LeaseHeartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopped.set()
        self.thread.join()

    def _beat(self) -> None:
        while self.row_ids and not self.stopped.wait(self.seconds / 3):
            try:
                self.extend()
            except Exception:
                log.exception(
                    "could not extend the lease of outbox emails %s", sorted(self.row_ids)
                )

    def extend(self) -> None:
        lease = utcnow() + timedelta(seconds=self.seconds)
        with self.app.app_context():
            try:
                with transaction() as session:
                    kept = set(
                        session.scalars(
                            update(OutboxEmail)
                            .where(
                                OutboxEmail.id.in_(sorted(self.row_ids)),
                                OutboxEmail.status == OutboxStatus.SENDING,
                                OutboxEmail.lease_expires_at == self.lease,
                            )
                            .values(lease_expires_at=lease)
                            .returning(OutboxEmail.id)
                            .execution_options(synchronize_session=False)
                        )
                    )
            finally:
                db.session.remove()
        for row_id in sorted(self.row_ids - kept):
            log.warning(
                "outbox email %s: lease ran out while it was being sent; another worker has it",
                row_id,
            )
        self.row_ids, self.lease = kept, lease

    def lease_of(self, row: OutboxEmail) -> datetime | None:
        """The lease ``row`` carries now, if it is still this worker's."""
        return self.lease if row.id in self.row_ids else row.lease_expires_at


def send_outbox_batch(
    transport: Transport, pool: ThreadPoolExecutor, rate: SendRate | None = None
) -> BatchResult:
    """Claim, send and record one batch: the worker loop's unit of work. Returns what
    happened to it.

    Claiming and recording are two short transactions of its own; no transaction is held
    open while the transport talks to the network, and the lease is kept alive meanwhile.
    The pauses in force are read in the claim's transaction, so a pause recorded anywhere
    stops every worker at its next claim.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    config = app.config
    lease_seconds = config["WORKER_LEASE_SECONDS"]
    with transaction() as session:
        now = utcnow()
        paused = frozenset(paused_scopes())
        given_up = give_up_on_abandoned_rows(config["WORKER_MAX_ATTEMPTS"], now)
        rows = claim_outbox_batch(
            config["WORKER_BATCH_SIZE"], lease_seconds, now, config["WORKER_MAX_ATTEMPTS"], paused
        )
        suppressed = set(suppress_claimed_rows(rows))
        rows = [row for row in rows if row.id not in suppressed]
        body_ids = {row.body_id for row in rows if row.body_id is not None}
        bodies = (
            {
                body.id: body
                for body in session.scalars(select(EmailBody).where(EmailBody.id.in_(body_ids)))
            }
            if body_ids
            else {}
        )
        session.expunge_all()
    result = BatchResult(failed=len(given_up), suppressed=len(suppressed), paused=paused)
    if not rows:
        count_emails(failed=result.failed, suppressed=result.suppressed)
        return result

    outcomes: dict[int, SendOutcome] = {}
    # Set by the first send SES refuses because it has paused the account: the sends not
    # yet begun are not attempted.
    provider_paused = threading.Event()
    # Claimed together, the rows carry the same lease.
    lease = rows[0].lease_expires_at
    heartbeat = LeaseHeartbeat(app, [row.id for row in rows], lease, lease_seconds)
    with heartbeat:
        futures = {}
        for row in rows:
            if provider_paused.is_set():
                outcomes[row.id] = SKIPPED
                continue
            try:
                message = build_message(row, bodies.get(row.body_id) if row.body_id else None)
            except Exception as error:
                log.exception("could not build outbox email %s", row.id)
                outcomes[row.id] = SendOutcome(error=SendError(f"could not build message: {error}"))
                continue
            # In the batch's log context (its job id), which threads do not inherit.
            futures[row.id] = pool.submit(
                contextvars.copy_context().run, _send, transport, message, provider_paused, rate
            )
        for row_id, future in futures.items():
            outcomes[row_id] = future.result()

    now = utcnow()
    max_age = timedelta(seconds=config["WORKER_MAX_RETRY_AGE_SECONDS"])
    changes: list[dict[str, Any]] = []
    pause_error: SendingPausedError | None = None
    for row in rows:
        outcome = outcomes[row.id]
        error = outcome.error
        change: dict[str, Any] = {
            "row_id": row.id,
            "our_lease": heartbeat.lease_of(row),
            "lease_expires_at": None,
            "sent_at": None,
            "provider_message_id": None,
            "next_attempt_at": row.next_attempt_at,
            "attempts": row.attempts,
            "last_error": None,
        }
        if outcome.held:
            if isinstance(error, SendingPausedError):
                pause_error = pause_error or error
            change.update(
                status=OutboxStatus.QUEUED, attempts=row.attempts - 1, last_error=row.last_error
            )
            result.held += 1
        elif error is None:
            change.update(
                status=OutboxStatus.SENT,
                sent_at=now,
                provider_message_id=outcome.provider_message_id,
            )
            result.sent += 1
        elif error.transient and now - row.created_at <= max_age:
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
            reason = (
                gave_up_reason(row.attempts, now - row.created_at, error)
                if error.transient
                else str(error)
            )
            change.update(status=OutboxStatus.FAILED, last_error=reason)
            result.failed += 1
            log.warning("outbox email %s failed: %s", row.id, reason)
        changes.append(change)
    if pause_error is not None:
        result.paused = result.paused | {PauseScope.ALL}

    def record() -> None:
        if pause_error is not None:
            record_provider_pause(pause_error, result.held, now)
        record_outbox_results(changes)

    # The rows keep this worker's lease for at least two thirds of it after the last beat.
    record_despite_outage(record, lease_seconds / 3)
    count_emails(
        sent=result.sent, failed=result.failed, suppressed=result.suppressed, retried=result.retried
    )
    return result


def record_despite_outage(record: Callable[[], None], within_seconds: float) -> None:
    """Run ``record`` in a transaction, trying again while the database cannot be reached,
    for up to ``within_seconds``.

    The batch has been sent: if its results were not written, its rows would stay leased
    until the lease ran out and then be sent a second time. A database restart or failover
    takes seconds; the lease, minutes.
    """
    deadline = time.monotonic() + within_seconds
    wait = DATABASE_RETRY_SECONDS
    while True:
        try:
            with transaction():
                record()
            return
        except Exception as error:
            if not database_unavailable(error) or time.monotonic() + wait > deadline:
                raise
            log.warning(
                "could not record what was sent (%s); trying again in %.1f s",
                (str(error).strip().splitlines() or [""])[0],
                wait,
            )
        time.sleep(wait)
        wait = min(wait * 2, DATABASE_RETRY_MAX_SECONDS)


def record_provider_pause(error: SendingPausedError, held: int, now: datetime) -> None:
    """SES has paused the account: pause all sending, where every worker and the operator
    see it, and say so as loudly as the log allows."""
    recorded = pause(PauseScope.ALL, str(error), PAUSED_BY_SES, now)
    log.error(
        "SES HAS PAUSED SENDING FOR THIS ACCOUNT: %s. All sending stopped%s; mail stays "
        "queued (%s of this batch put back). Run `alertsvc sending resume` once SES has "
        "re-enabled the account.",
        str(error).rstrip("."),
        "" if recorded else " (already recorded by another worker)",
        plural(held, "email"),
    )


def record_outbox_results(changes: list[dict[str, Any]]) -> None:
    """Write what happened to each row, unless its lease ran out and another worker took it.

    A row is recorded only while it still carries this worker's lease (``our_lease``): a
    worker slower than its lease must not overwrite the result of the one that took over.
    One statement run for every row at once (executemany); on the table rather than the ORM
    entity, which would evaluate each row against the session's objects (a millisecond a
    row, at a digest's volume more than the send).
    """
    outbox = OutboxEmail.__table__
    record = (
        update(outbox)
        .where(
            outbox.c.id == bindparam("row_id"),
            outbox.c.status == OutboxStatus.SENDING,
            outbox.c.lease_expires_at == bindparam("our_lease"),
        )
        .values(
            {
                column: bindparam(column)
                for column in (
                    "status",
                    "attempts",
                    "lease_expires_at",
                    "sent_at",
                    "provider_message_id",
                    "next_attempt_at",
                    "last_error",
                )
            }
        )
    )
    recorded = db.session.execute(record, changes).rowcount
    # SES may have reported on some of these already (delivery.feedback).
    attach_feedback(
        [
            change["provider_message_id"]
            for change in changes
            if change["status"] == OutboxStatus.SENT and change["provider_message_id"]
        ]
    )
    if recorded < len(changes):
        log.warning(
            "%s of %s outbox emails (among ids %s) were not recorded: their lease ran out "
            "while they were sent, and the worker that took them over records them",
            len(changes) - recorded,
            len(changes),
            ", ".join(str(change["row_id"]) for change in changes),
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
    # Sends at once (threads); None: the WORKER_CONCURRENCY setting.
    concurrency: int | None = None
    stop: StopSignal = field(default_factory=StopSignal)

    def run(self) -> WorkerTotals:
        """Send until stopped, or, in burst mode, until nothing is due.

        While all sending is paused the worker idles, polling, and sends again once an
        operator resumes; in burst mode it stops (``totals.paused`` says why).
        """
        totals = WorkerTotals()
        config = self.app.config
        concurrency = self.concurrency or config["WORKER_CONCURRENCY"]
        transport = make_transport(self.app, concurrency)
        rate = SendRate.from_config(config, transport, self.stop.event)
        wakeup = Wakeup(config["SQLALCHEMY_DATABASE_URI"], OUTBOX_CHANNEL, self.stop.event)
        next_reputation_check = time.monotonic()
        waiting_for_resume = False
        # Seconds waited after the last failure to reach the database; 0: reachable.
        database_wait = 0.0
        with wakeup, ThreadPoolExecutor(concurrency, "alertsvc-send") as pool:
            while not self.stop.event.is_set():
                if time.monotonic() >= next_reputation_check:
                    self.guard_reputation()
                    next_reputation_check = time.monotonic() + config["REPUTATION_CHECK_SECONDS"]
                try:
                    with job_context("send_outbox_batch"), self.app.app_context():
                        result = send_outbox_batch(transport, pool, rate)
                except Exception as error:
                    if self.burst or not database_unavailable(error):
                        raise
                    database_wait = self.wait_for_database(error, database_wait)
                    continue
                if database_wait:
                    log.info("the database is back: sending again")
                    database_wait = 0.0
                totals.paused = result.paused
                if result.claimed:
                    totals.add(result)
                    wakeup.busy()
                    continue
                all_paused = PauseScope.ALL in result.paused
                if all_paused and not waiting_for_resume and not self.burst:
                    log.warning(
                        "all sending is paused: waiting for `alertsvc sending resume` "
                        "(see `alertsvc sending status`)"
                    )
                elif waiting_for_resume and not all_paused:
                    log.info("sending resumed")
                waiting_for_resume = all_paused
                if self.burst:
                    break
                wakeup.wait(config["WORKER_POLL_SECONDS"])
        transport.close()
        return totals

    def wait_for_database(self, error: Exception, waited: float) -> float:
        """The database could not be reached: say so (once per outage), wait a little
        longer each time (up to ``DATABASE_RETRY_MAX_SECONDS``, so the worker is back within
        seconds of the database), and return how long it waited.

        A burst worker (tests, cron) stops with the error instead: its next run retries.
        Rows this worker had claimed stay leased to it and are taken over when the lease
        runs out; none is lost.
        """
        if not waited:
            log.error(
                "lost the database (%s): retrying every few seconds",
                (str(error).strip().splitlines() or [""])[0],
            )
        wait = min(DATABASE_RETRY_MAX_SECONDS, max(DATABASE_RETRY_SECONDS, waited * 2))
        self.stop.event.wait(wait)
        return wait

    def guard_reputation(self) -> None:
        """Run the reputation guard in a transaction of its own; a failure is logged and
        sending goes on (the guard is tried again at its next turn)."""
        with self.app.app_context():
            try:
                with transaction():
                    check_reputation(self.app.config, utcnow())
            except Exception:
                log.exception("the reputation check failed; it will be tried again")
            finally:
                db.session.remove()
