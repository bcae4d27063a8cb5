"""The reputation guard: pause subscription mail before SES would pause the account.

SES reviews an account whose bounce rate reaches 5% or complaint rate 0.1% and may pause
it at 10% and 0.5%. The guard watches the same rates over the recent subscription emails
(a window by count and by time) and, at half those levels by default, pauses digests and
alerts; confirmation and manage-link emails, asked for by the reader a moment ago, still
go. It never resumes by itself: an operator looks at what bounced and decides.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, exists, func, select

from alertsvc.delivery.pauses import pause
from alertsvc.extensions import db
from alertsvc.models import (
    DeliveryEvent,
    DeliveryEventKind,
    OutboxEmail,
    OutboxStatus,
    PauseScope,
    SendingPause,
)

log = logging.getLogger(__name__)

PAUSED_BY = "reputation guard"


class Verdict(enum.StrEnum):
    TOO_FEW_SENDS = "too few sends for a verdict"
    HEALTHY = "healthy"
    TRIPPED = "past a threshold"


@dataclass(frozen=True)
class ReputationReport:
    sends: int
    bounces: int
    complaints: int
    min_sends: int
    bounce_threshold: float
    complaint_threshold: float
    # Set by ``check_reputation`` when this check recorded the pause.
    paused: bool = False

    @property
    def bounce_rate(self) -> float:
        return self.bounces / self.sends if self.sends else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sends if self.sends else 0.0

    @property
    def problems(self) -> list[str]:
        """Each rate at or past its threshold, in words, once the sample is big enough.

        "At" trips too: the thresholds are already half of SES's levels, and a guard that
        waits for one more bounce has waited too long.
        """
        if self.sends < self.min_sends:
            return []
        found = []
        for name, count, rate, threshold in (
            ("bounce", self.bounces, self.bounce_rate, self.bounce_threshold),
            ("complaint", self.complaints, self.complaint_rate, self.complaint_threshold),
        ):
            if rate >= threshold:
                found.append(
                    f"{name} rate {rate:.2%} ({count} of the last {self.sends} subscription "
                    f"emails) is at or above the threshold of {threshold:.2%}"
                )
        return found

    @property
    def verdict(self) -> Verdict:
        if self.sends < self.min_sends:
            return Verdict.TOO_FEW_SENDS
        return Verdict.TRIPPED if self.problems else Verdict.HEALTHY


def measure_reputation(config: Mapping[str, Any], now: datetime) -> ReputationReport:
    """Bounce and complaint rates over the most recent ``REPUTATION_WINDOW_SENDS``
    subscription emails sent within ``REPUTATION_WINDOW_SECONDS``. Reads only.

    One statement: the newest sends (``ix_outbox_sent_at``), each counted once however many
    events it has (``delivery_events.outbox_id``). Once an operator has resumed after the
    guard tripped, only sends after that count: the operator has dealt with what went
    before, and the guard must not pause again at once on the same bounces.
    """
    since = now - timedelta(seconds=config["REPUTATION_WINDOW_SECONDS"])
    resumed = db.session.scalar(
        select(func.max(SendingPause.resumed_at)).where(
            SendingPause.scope == PauseScope.SUBSCRIPTIONS,
            SendingPause.paused_by == PAUSED_BY,
        )
    )
    if resumed is not None:
        since = max(since, resumed)
    recent = (
        select(OutboxEmail.id)
        .where(
            OutboxEmail.sent_at.is_not(None),
            OutboxEmail.sent_at >= since,
            OutboxEmail.status.in_([OutboxStatus.SENT, OutboxStatus.DELIVERED]),
            OutboxEmail.is_subscription_email,
        )
        .order_by(OutboxEmail.sent_at.desc(), OutboxEmail.id.desc())
        .limit(config["REPUTATION_WINDOW_SENDS"])
        .subquery()
    )

    def events(kind: DeliveryEventKind) -> Any:
        has_event = exists().where(
            DeliveryEvent.outbox_id == recent.c.id, DeliveryEvent.kind == kind.value
        )
        return func.coalesce(func.sum(case((has_event, 1), else_=0)), 0)

    sends, bounces, complaints = db.session.execute(
        select(
            func.count(recent.c.id),
            events(DeliveryEventKind.PERMANENT_BOUNCE),
            events(DeliveryEventKind.COMPLAINT),
        )
    ).one()
    return ReputationReport(
        sends=int(sends),
        bounces=int(bounces),
        complaints=int(complaints),
        min_sends=config["REPUTATION_MIN_SENDS"],
        bounce_threshold=config["REPUTATION_BOUNCE_RATE"],
        complaint_threshold=config["REPUTATION_COMPLAINT_RATE"],
    )


def check_reputation(config: Mapping[str, Any], now: datetime) -> ReputationReport:
    """Measure, and past a threshold pause subscription emails (once: a pause already in
    force is left as it is). The caller owns the transaction."""
    report = measure_reputation(config, now)
    problems = report.problems
    if not problems:
        return report
    reason = "; ".join(problems)
    recorded = pause(PauseScope.SUBSCRIPTIONS, reason, PAUSED_BY, now)
    if recorded:
        log.error(
            "REPUTATION GUARD: %s. Subscription emails (digests and alerts) are paused; "
            "confirmation and manage-link emails still go. Find out what bounced or was "
            "complained about, then run `alertsvc sending resume --subscriptions`.",
            reason,
        )
    return replace(report, paused=recorded)
