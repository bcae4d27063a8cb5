"""The JSON API's figures: subscribers, the outbox, and emails per day."""

from __future__ import annotations

from typing import Any

from alertsvc.api.blueprint import bp, requires
from alertsvc.api.schemas import StatsSchema
from alertsvc.database import transaction
from alertsvc.delivery.stats import emails_per_day, outbox_by_status
from alertsvc.delivery.status import outbox_summary
from alertsvc.models import utcnow
from alertsvc.subscriptions.stats import subscriber_counts

DAYS = 30


@bp.route("/stats", methods=["GET"])
@bp.doc(
    summary="Subscribers, the outbox and emails per day",
    description=(
        f"Scope `read`. Subscribers (confirmed, pending) by topic and frequency; every "
        f"outbox row by status and the oldest queued email's age; for each of the last "
        f"{DAYS} days (UTC), the emails queued that day and how many of them were sent, "
        "failed or were suppressed."
    ),
)
@bp.response(200, StatsSchema)
@requires("read")
def get_stats() -> Any:
    now = utcnow()
    with transaction():
        oldest = outbox_summary(now).oldest_queued
        return {
            "subscribers": [vars(count) for count in subscriber_counts()],
            "outbox": outbox_by_status(),
            "oldest_queued_seconds": max(int(oldest.total_seconds()), 0) if oldest else None,
            "emails_per_day": [
                {**vars(day), "day": day.day.isoformat()}
                for day in emails_per_day(now.date(), DAYS)
            ],
        }
