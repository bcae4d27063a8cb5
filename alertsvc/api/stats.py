"""The JSON API's figures: subscribers, the outbox, and emails per day. Each is read from
its one home (``subscriptions.stats``, ``delivery.stats``), as the dashboard reads it."""

from __future__ import annotations

from typing import Any

from alertsvc.api.blueprint import bp, requires
from alertsvc.api.schemas import StatsSchema
from alertsvc.database import transaction
from alertsvc.delivery.stats import emails_per_day, outbox_by_status, outbox_depth
from alertsvc.models import utcnow
from alertsvc.subscriptions.stats import subscriber_counts

DAYS = 30


@bp.route("/stats", methods=["GET"])
@bp.doc(
    summary="Subscribers, the outbox and emails per day",
    description=(
        "Scope `read`. Subscribers (confirmed, pending) by topic and frequency; every "
        "outbox row by status and the oldest queued email's age; for each of the last "
        f"{DAYS} days (UTC), the emails queued that day, the emails sent (or delivered) "
        "that day, and how many of the emails queued that day failed or were suppressed "
        "(the outbox keeps no time of failure)."
    ),
)
@bp.response(200, StatsSchema)
@requires("read")
def get_stats() -> Any:
    now = utcnow()
    with transaction():
        oldest = outbox_depth(now).oldest_age
        return {
            "subscribers": [vars(count) for count in subscriber_counts()],
            "outbox": outbox_by_status(),
            "oldest_queued_seconds": (
                None if oldest is None else max(int(oldest.total_seconds()), 0)
            ),
            "emails_per_day": [
                {**vars(day), "day": day.day.isoformat()}
                for day in emails_per_day(now.date(), DAYS)
            ],
        }
