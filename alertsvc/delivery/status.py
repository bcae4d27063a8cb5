"""The outbox at a glance, for ``alertsvc sending status``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from alertsvc.delivery.stats import outbox_depth
from alertsvc.extensions import db
from alertsvc.models import OutboxEmail, OutboxStatus
from alertsvc.text import plural


@dataclass(frozen=True)
class OutboxSummary:
    queued: int
    sending: int
    failed: int
    suppressed: int
    oldest_queued: timedelta | None

    @property
    def oldest_queued_age(self) -> str | None:
        """``4 minutes``, ``2 hours``, ``3 days``: how long the oldest queued email has waited."""
        if self.oldest_queued is None:
            return None
        seconds = max(int(self.oldest_queued.total_seconds()), 0)
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
            if seconds >= size:
                return plural(seconds // size, unit)
        return plural(seconds, "second")


def outbox_summary(now: datetime) -> OutboxSummary:
    """Counts of the outbox rows still in play or given up on, and the oldest queued row's
    age. Sent and delivered rows are left out: they are the bulk and need no one."""
    counted = (
        OutboxStatus.SENDING,
        OutboxStatus.FAILED,
        OutboxStatus.SUPPRESSED,
    )
    counts = dict(
        db.session.execute(
            select(OutboxEmail.status, func.count())
            .where(OutboxEmail.status.in_(counted))
            .group_by(OutboxEmail.status)
        ).all()
    )
    depth = outbox_depth(now)
    return OutboxSummary(
        queued=depth.queued,
        sending=counts.get(OutboxStatus.SENDING, 0),
        failed=counts.get(OutboxStatus.FAILED, 0),
        suppressed=counts.get(OutboxStatus.SUPPRESSED, 0),
        oldest_queued=depth.oldest_age,
    )
