"""Digest runs as an operator sees them: listing them, their failures, retrying them.

A run that fails to plan is a unit of scheduled work that fails alone (``alertsvc.retries``):
its failure is recorded on its row, the sweeper tries it again from ``next_attempt_at``,
and after ``JOB_MAX_ATTEMPTS`` failures it is parked until ``alertsvc digest retry``.
Services: they never commit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select

from alertsvc.digests.planning import find_or_create_digest_run
from alertsvc.extensions import db
from alertsvc.models import DigestRun, RunStatus
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
