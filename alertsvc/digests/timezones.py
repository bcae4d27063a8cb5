"""Which timezones confirmed subscribers live in: shared by digest planning and immediate alerts.

Digest slots (which subscribers' chosen hour it is) and the alerts' daily cap (which local
day it is) are both worked out once per timezone rather than per subscriber. This module
is the one query both ask, so neither imports the other's internals.
"""

from __future__ import annotations

from sqlalchemy import select

from alertsvc.extensions import db
from alertsvc.models import Subscriber


def subscriber_timezones() -> list[str]:
    """Every timezone a confirmed subscriber lives in (a timezone nobody is in costs nothing)."""
    return list(
        db.session.scalars(
            select(Subscriber.timezone).distinct().where(Subscriber.confirmed_at.is_not(None))
        )
    )
