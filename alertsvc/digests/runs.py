"""Digest runs as an operator sees them: listing them, their failures, retrying them.

A run that fails to plan is a unit of scheduled work that fails alone (``alertsvc.retries``):
its failure is recorded on its row, the sweeper tries it again from ``next_attempt_at``,
and after ``JOB_MAX_ATTEMPTS`` failures it is parked until ``alertsvc digest retry``.
Services: they never commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update

from alertsvc.audit import record_audit
from alertsvc.digests.planning import PlanResult, find_or_create_digest_run
from alertsvc.extensions import db
from alertsvc.models import (
    DigestRun,
    OutboxEmail,
    OutboxStatus,
    RunStatus,
    Subscriber,
    Suppression,
)
from alertsvc.retries import Failure, RetryPolicy


class RunError(Exception):
    """A run that cannot be retried. The message is for an operator."""


def record_run_failure(
    frequency: str,
    window_end: datetime,
    error: str,
    *,
    now: datetime,
    policy: RetryPolicy,
    trigger: str = "scheduler",
) -> Failure:
    """Count a failed attempt at the run, creating its row if the attempt failed before it
    was written, so even a run that never got started is seen and retried."""
    run = find_or_create_digest_run(frequency, window_end, trigger)
    failure = policy.failed(run.attempts or 0, error, now)
    run.attempts = failure.attempts
    run.last_error = failure.error
    run.next_attempt_at = None if failure.parked_at else failure.next_attempt_at
    run.parked_at = failure.parked_at
    return failure


def record_run_trigger(
    frequency: str,
    window_end: datetime,
    run_id: int | None,
    *,
    result: PlanResult | None = None,
    already_planned: bool | None = None,
    error: str | None = None,
) -> None:
    """Audit a run started by hand (the runs page, ``alertsvc digest run``, the API) as
    ``run.trigger`` on ``run N`` (``<frequency> run`` if it never got a row): its window
    end, and what came of it as far as the caller knows, what planning queued
    (``result``), only whether it was planned before, or the error. In the caller's
    transaction, as every audit entry is."""
    details: dict[str, Any] = {"frequency": frequency, "window_end": window_end.isoformat()}
    if result is not None:
        details.update(
            subscribers=result.subscribers,
            emails=result.emails,
            already_planned=result.already_planned,
        )
    elif already_planned is not None:
        details["already_planned"] = already_planned
    if error is not None:
        details["error"] = error
    target = f"run {run_id}" if run_id is not None else f"{frequency} run"
    record_audit("run.trigger", target, details)


def record_run_retry(
    run_id: int, *, result: PlanResult | None = None, error: str | None = None
) -> None:
    """Audit a parked or failing run planned again by hand (the run's page, ``alertsvc
    digest retry``) as ``run.retry``: what planning queued, or the error."""
    details: dict[str, Any] = {}
    if result is not None:
        details.update(subscribers=result.subscribers, emails=result.emails)
    if error is not None:
        details["error"] = error
    record_audit("run.retry", f"run {run_id}", details)


def runs_to_resume(since: datetime, now: datetime) -> list[tuple[str, datetime]]:
    """Runs still planning whose window ended at or after ``since``, not parked and not
    waiting for their next attempt, oldest first."""
    return [
        (frequency, window_end)
        for frequency, window_end in db.session.execute(
            select(DigestRun.frequency, DigestRun.window_end)
            .where(
                DigestRun.status == RunStatus.PLANNING,
                DigestRun.window_end >= since,
                DigestRun.parked_at.is_(None),
                or_(DigestRun.next_attempt_at.is_(None), DigestRun.next_attempt_at <= now),
            )
            .order_by(DigestRun.window_end, DigestRun.frequency)
        )
    ]


def release_run_for_retry(run_id: int) -> DigestRun:
    """Un-park a run (or cut its wait short) so it can be planned again now."""
    run = db.session.get(DigestRun, run_id)
    if run is None:
        raise RunError(f"No digest run {run_id}.")
    if run.status == RunStatus.PLANNED:
        raise RunError(f"Digest run {run_id} is already planned: nothing to retry.")
    run.attempts = 0
    run.next_attempt_at = None
    run.parked_at = None
    return run


def recent_runs(limit: int) -> list[DigestRun]:
    """The latest ``limit`` runs, newest first, then every older one that failed and is
    still planning (those an operator has to look at)."""
    latest = list(
        db.session.scalars(
            select(DigestRun)
            .order_by(DigestRun.window_end.desc(), DigestRun.frequency)
            .limit(limit)
        )
    )
    shown = {run.id for run in latest}
    unfinished = db.session.scalars(
        select(DigestRun)
        .where(DigestRun.status == RunStatus.PLANNING, DigestRun.attempts > 0)
        .order_by(DigestRun.window_end.desc(), DigestRun.frequency)
    )
    return latest + [run for run in unfinished if run.id not in shown]


@dataclass
class RunEmails:
    """A run's emails by status, and when the last one was sent (operator pages)."""

    by_status: dict[str, int] = field(default_factory=dict)
    last_sent_at: datetime | None = None

    def count(self, *statuses: str) -> int:
        return sum(self.by_status.get(status, 0) for status in statuses)

    @property
    def waiting(self) -> int:
        """Still to be sent: queued, or claimed by a worker."""
        return self.count(OutboxStatus.QUEUED, OutboxStatus.SENDING)

    @property
    def sent(self) -> int:
        return self.count(OutboxStatus.SENT, OutboxStatus.DELIVERED)

    def every_status(self) -> dict[str, int]:
        """By status, every status present (0 if none)."""
        return {str(status): self.by_status.get(status, 0) for status in OutboxStatus}


def list_runs(
    limit: int, before_id: int | None = None, frequency: str | None = None
) -> list[DigestRun]:
    """Runs newest first (by id: the order they were started in), ``before_id`` pages back,
    of one ``frequency`` if given."""
    statement = select(DigestRun).order_by(DigestRun.id.desc()).limit(limit)
    if before_id is not None:
        statement = statement.where(DigestRun.id < before_id)
    if frequency is not None:
        statement = statement.where(DigestRun.frequency == frequency)
    return list(db.session.scalars(statement))


def run_emails(run_ids: list[int]) -> dict[int, RunEmails]:
    """The emails of each run by status, in one GROUP BY over ``ix_outbox_run_id``."""
    found: dict[int, RunEmails] = {run_id: RunEmails() for run_id in run_ids}
    if not run_ids:
        return found
    for run_id, status, emails, last_sent in db.session.execute(
        select(
            OutboxEmail.run_id,
            OutboxEmail.status,
            func.count(),
            func.max(OutboxEmail.sent_at),
        )
        .where(OutboxEmail.run_id.in_(run_ids))
        .group_by(OutboxEmail.run_id, OutboxEmail.status)
    ):
        summary = found[run_id]
        summary.by_status[status] = emails
        if last_sent is not None and (
            summary.last_sent_at is None or last_sent > summary.last_sent_at
        ):
            summary.last_sent_at = last_sent
    return found


def requeue_failed_emails(run_id: int, now: datetime) -> int:
    """Queue a run's failed emails again, now, with their attempts reset; how many.

    One UPDATE. Suppressed emails are not failed and stay as they are; nor are the emails
    of erased subscribers, whose rows no longer have an address to send to, nor those to
    an address suppressed since they failed (the worker would only suppress them, and the
    count would promise emails that are never sent). ``last_error`` is kept, so the reason
    stays visible until the next attempt replaces it.
    """
    erased = select(Subscriber.id).where(Subscriber.erased_at.is_not(None))
    # A row that failed was claimed, and the claim filled in its address.
    suppressed = (
        select(Suppression.id)
        .where(Suppression.email == OutboxEmail.to_address)
        .correlate(OutboxEmail)
    )
    result = db.session.execute(
        update(OutboxEmail)
        .where(
            OutboxEmail.run_id == run_id,
            OutboxEmail.status == OutboxStatus.FAILED,
            or_(OutboxEmail.subscriber_id.is_(None), OutboxEmail.subscriber_id.not_in(erased)),
            ~suppressed.exists(),
        )
        .values(
            status=OutboxStatus.QUEUED,
            attempts=0,
            lease_runouts=0,
            next_attempt_at=now,
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount
