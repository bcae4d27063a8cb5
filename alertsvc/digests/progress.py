"""Digest runs and their progress: what each run queued, and what has become of it since."""

from __future__ import annotations

from sqlalchemy import func, select

from alertsvc.extensions import db
from alertsvc.models import DigestRun, OutboxEmail, OutboxStatus


def list_runs(
    *, limit: int, frequency: str | None = None, before_id: int | None = None
) -> list[DigestRun]:
    """Up to ``limit`` runs, newest (highest id) first, paged by id."""
    query = select(DigestRun).order_by(DigestRun.id.desc()).limit(limit)
    if frequency is not None:
        query = query.where(DigestRun.frequency == frequency)
    if before_id is not None:
        query = query.where(DigestRun.id < before_id)
    return list(db.session.scalars(query))


def run_email_counts(run_ids: list[int]) -> dict[int, dict[str, int]]:
    """run id -> outbox status -> emails, every status present (0 if none), in one query."""
    counts: dict[int, dict[str, int]] = {
        run_id: dict.fromkeys(OutboxStatus, 0) for run_id in run_ids
    }
    if run_ids:
        for run_id, status, number in db.session.execute(
            select(OutboxEmail.run_id, OutboxEmail.status, func.count())
            .where(OutboxEmail.run_id.in_(run_ids))
            .group_by(OutboxEmail.run_id, OutboxEmail.status)
        ):
            counts[run_id][OutboxStatus(status)] = number
    return {run_id: {str(k): v for k, v in by.items()} for run_id, by in counts.items()}
