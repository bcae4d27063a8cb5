"""The one policy for scheduled work that fails: back off, then park.

A unit of scheduled work (an article's immediate alerts, a digest run, a feed poll) fails
alone: its job rolls back that unit's transaction, logs the unit's id and the error, and
records the failure on the unit's row in a transaction of its own. The unit is tried again
after a delay that doubles with each failure in a row, up to a longest delay; after
``JOB_MAX_ATTEMPTS`` failures in a row it is parked with its reason and no job takes it
again until an operator retries it by hand (``alerts retry``, ``digest retry``,
``feeds retry``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from alertsvc.extensions import db
from alertsvc.models import Article, DigestRun, Feed

ERROR_LENGTH = 2000
# Where each kind of unit records that it is parked: the dashboard and /metrics count these.
PARKED_AT = {
    "articles": Article.alert_parked_at,
    "runs": DigestRun.parked_at,
    "feeds": Feed.parked_at,
}


def parked_counts() -> dict[str, int]:
    """How many units of each kind are parked, waiting for an operator (``PARKED_AT``)."""
    return {
        kind: db.session.scalar(select(func.count()).where(column.is_not(None))) or 0
        for kind, column in PARKED_AT.items()
    }


@dataclass(frozen=True)
class Failure:
    """What a failure leaves on its unit: the count so far, when to try again, and whether
    the unit is now parked (``parked_at`` set: no automatic retry)."""

    attempts: int
    next_attempt_at: datetime
    parked_at: datetime | None
    error: str


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base: timedelta
    longest: timedelta

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        *,
        base: timedelta | None = None,
        longest: timedelta | None = None,
    ) -> RetryPolicy:
        """The configured policy; a kind of unit with its own pace (feeds poll on an
        interval) passes its own ``base`` and ``longest`` delay."""
        base = base if base is not None else timedelta(seconds=config["JOB_BACKOFF_BASE_SECONDS"])
        if longest is None:
            longest = timedelta(seconds=config["JOB_BACKOFF_MAX_SECONDS"])
        return cls(max(1, int(config["JOB_MAX_ATTEMPTS"])), base, longest)

    def delay(self, attempts: int) -> timedelta:
        """The wait after ``attempts`` failures in a row: ``base``, doubling, up to ``longest``."""
        return min(self.base * 2 ** min(max(attempts - 1, 0), 30), max(self.longest, self.base))

    def failed(self, attempts_before: int, error: str, now: datetime) -> Failure:
        """The unit's state after one more failure, given how many it had in a row before."""
        attempts = attempts_before + 1
        return Failure(
            attempts=attempts,
            next_attempt_at=now + self.delay(attempts),
            parked_at=now if attempts >= self.max_attempts else None,
            error=error[:ERROR_LENGTH],
        )


def describe_error(error: BaseException) -> str:
    """An exception as one line for the unit's row and the CLI."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
