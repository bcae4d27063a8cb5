"""Outbox figures for operators: every row by status, and emails per day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import ColumnElement, String, case, func, select

from alertsvc.extensions import db
from alertsvc.models import OutboxEmail, OutboxStatus


def outbox_by_status() -> dict[str, int]:
    """Every outbox row by status, every status present (0 if none)."""
    counts = dict.fromkeys((str(status) for status in OutboxStatus), 0)
    counts.update(
        db.session.execute(
            select(OutboxEmail.status, func.count()).group_by(OutboxEmail.status)
        ).all()
    )
    return counts


@dataclass(frozen=True)
class DayCount:
    day: date
    queued: int = 0
    sent: int = 0
    failed: int = 0
    suppressed: int = 0


_SENT = (OutboxStatus.SENT, OutboxStatus.DELIVERED)


def emails_per_day(today: date, days: int = 30) -> list[DayCount]:
    """For each of the ``days`` UTC days up to ``today``, oldest first: the emails queued
    that day, and how many of those have been sent, have failed or were suppressed.

    Counted by the day each email was queued: an outbox row records when it was sent but
    not when it failed or was suppressed. One grouped query; days with none are zeros.
    """
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, time(0), tzinfo=UTC)
    created = OutboxEmail.created_at
    day = (
        func.to_char(func.timezone("UTC", created), "YYYY-MM-DD")
        if db.session.get_bind().dialect.name == "postgresql"
        else func.substr(created, 1, 10, type_=String)
    )

    def having(*statuses: OutboxStatus) -> ColumnElement[int]:
        return func.sum(case((OutboxEmail.status.in_(statuses), 1), else_=0))

    rows = db.session.execute(
        select(
            day,
            func.count(),
            having(*_SENT),
            having(OutboxStatus.FAILED),
            having(OutboxStatus.SUPPRESSED),
        )
        .where(created >= start)
        .group_by(day)
    )
    found = {
        day_text: DayCount(date.fromisoformat(day_text), int(q), int(s), int(f), int(u))
        for day_text, q, s, f, u in rows
    }
    result = []
    for offset in range(days):
        moment = first + timedelta(days=offset)
        result.append(found.get(moment.isoformat(), DayCount(moment)))
    return result
