"""When digests are due: each subscriber's own local hour, in UTC run hours.

A run is keyed by the UTC hour ``H`` at which it ends. A subscriber who wants their daily
digest at local hour ``h`` is due in the run whose ``H`` is the first whole UTC hour at or
after ``h:00`` local on each local date. Each local date gives exactly one such instant, so
daylight-saving changes neither skip nor double a digest: on the spring-forward day a
local hour that does not exist maps forward (01:00 in London becomes 02:00 BST, i.e. 01:00
UTC); on the fall-back day a local hour that happens twice is served the first time.
Half-hour zones (India, Newfoundland…) are served at the next whole UTC hour.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

HOUR = timedelta(hours=1)
DAILY_WEEKDAY = -1  # slot weekday for daily runs


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def scheduled_instant(day: date, hour: int, zone: ZoneInfo) -> datetime:
    """``hour``:00 on ``day`` in ``zone``, in UTC (fold=0: the first of a repeated hour)."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=zone).astimezone(UTC)


def run_hour_for(instant: datetime) -> datetime:
    """The run that serves a digest scheduled at ``instant``: the next whole UTC hour."""
    floored = floor_hour(instant)
    return floored if floored == instant else floored + HOUR


def due_slots(
    frequency: str, window_end: datetime, timezones: Iterable[str]
) -> list[tuple[str, int, int]]:
    """The (timezone, hour, weekday) slots whose digests the run ending at ``window_end`` sends.

    ``weekday`` is Monday=0 … Sunday=6 for weekly runs and ``DAILY_WEEKDAY`` for daily ones.
    """
    end = floor_hour(window_end)
    slots: list[tuple[str, int, int]] = []
    for name in sorted(set(timezones)):
        zone = ZoneInfo(name)
        days = {(end - HOUR).astimezone(zone).date(), end.astimezone(zone).date()}
        for day in sorted(days):
            for hour in range(24):
                if run_hour_for(scheduled_instant(day, hour, zone)) != end:
                    continue
                weekday = day.weekday() if frequency == "weekly" else DAILY_WEEKDAY
                if (name, hour, weekday) not in slots:
                    slots.append((name, hour, weekday))
    return slots


def local_midnight(moment: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant the local day containing ``moment`` began."""
    local = moment.astimezone(zone).date()
    return datetime(local.year, local.month, local.day, tzinfo=zone).astimezone(UTC)
