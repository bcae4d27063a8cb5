"""What each retention step deletes or blanks: plain functions, one chunk at a time.

Each ``purge_*`` function handles at most ``limit`` rows (or one range of subscribers) and
returns how many it changed; the caller loops, one transaction a chunk, so a purge of
millions of rows never holds one long transaction or lock. Each ``count_*`` function says
how many rows the purge would touch now, for ``--dry-run``.

What planning still reads is never purged:

* Each subscriber's latest ``digest_deliveries`` row per frequency is their position: their
  next digest starts where it ends (``digests.planning``). Only rows with a later row for
  the same subscriber and frequency go.
* ``alert_deliveries`` rows keep an article from being alerted twice while it is young
  enough to alert (``ALERT_MAX_ARTICLE_AGE_DAYS``), count today's alerts for the daily cap,
  and hold alerts carried over to the next daily digest: only rows past both ages, and not
  waiting for a digest, go.
* Digest runs within ``DIGEST_LOOKBACK_HOURS`` are the sweeper's to finish; runs still
  planning or parked are an operator's. Only planned runs past both, with no outbox row
  left, go (their slots with them).
* An email body goes once no outbox row and no recent ledger row refers to it. Bodies are
  keyed by their content (a digest's article set, an alert's article), and articles that
  old are never in a new email, so no new email can come to share a body being deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, delete, exists, func, not_, or_, select, true
from sqlalchemy.orm import aliased

from alertsvc.extensions import db
from alertsvc.models import (
    AlertDelivery,
    DigestDelivery,
    DigestRun,
    EmailBody,
    OutboxEmail,
    OutboxStatus,
    RunStatus,
    SignupRequest,
    Subscriber,
    Subscription,
)
from alertsvc.subscriptions.services import erase_subscriber

FINAL_STATUSES = (
    OutboxStatus.SENT,
    OutboxStatus.DELIVERED,
    OutboxStatus.FAILED,
    OutboxStatus.SUPPRESSED,
)


@dataclass(frozen=True)
class Cutoffs:
    """Rows older than these instants may go."""

    outbox: datetime
    runs: datetime
    alerts: datetime
    unsubscribed: datetime

    @classmethod
    def from_config(cls, config: Mapping[str, Any], now: datetime) -> Cutoffs:
        runs = min(
            now - timedelta(days=config["RETENTION_RUNS_DAYS"]),
            now - timedelta(hours=config["DIGEST_LOOKBACK_HOURS"]) - timedelta(days=1),
        )
        alerts = min(runs, now - timedelta(days=config["ALERT_MAX_ARTICLE_AGE_DAYS"] + 1))
        return cls(
            outbox=now - timedelta(days=config["RETENTION_OUTBOX_DAYS"]),
            runs=runs,
            alerts=alerts,
            unsubscribed=now - timedelta(days=config["RETENTION_UNSUBSCRIBED_DAYS"]),
        )


@dataclass
class PurgeCounts:
    outbox_emails: int = 0
    email_bodies: int = 0
    digest_deliveries: int = 0
    alert_deliveries: int = 0
    digest_runs: int = 0
    addresses_blanked: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _count(ids: Select[Any]) -> int:
    return db.session.scalar(select(func.count()).select_from(ids.subquery())) or 0


def _delete_ids(model: Any, ids: Select[Any], limit: int) -> int:
    chunk = [row_id for (row_id,) in db.session.execute(ids.limit(limit))]
    if not chunk:
        return 0
    db.session.execute(
        delete(model).where(model.id.in_(chunk)).execution_options(synchronize_session=False)
    )
    return len(chunk)


# -- outbox rows and bodies ------------------------------------------------------------------


def old_outbox_ids(cutoff: datetime) -> Select[Any]:
    """Finished rows older than ``cutoff``.

    By ``next_attempt_at`` (the claim index leads with status and it): a row's next attempt
    is never before it was queued, so this finds only rows queued before ``cutoff``.
    """
    return select(OutboxEmail.id).where(
        OutboxEmail.status.in_(FINAL_STATUSES), OutboxEmail.next_attempt_at < cutoff
    )


def purge_outbox(cutoff: datetime, limit: int) -> int:
    return _delete_ids(OutboxEmail, old_outbox_ids(cutoff), limit)


def _kept_outbox(outbox_cutoff: datetime | None) -> Any:
    """Outbox rows that still count as references: all of them, or for a dry run those the
    outbox step would keep."""
    if outbox_cutoff is None:
        return true()
    return not_(
        and_(OutboxEmail.status.in_(FINAL_STATUSES), OutboxEmail.next_attempt_at < outbox_cutoff)
    )


def unused_body_ids(
    cutoff: datetime, runs_cutoff: datetime, outbox_cutoff: datetime | None = None
) -> Select[Any]:
    """Bodies older than ``cutoff`` that no outbox row and no recent ledger row uses.

    ``outbox.body_id`` has no index (it would cost every insert of a digest run): the
    bodies in use are read as one distinct set, a few thousand ids the database hashes
    after one pass over the outbox, rather than looked up body by body.
    """
    in_outbox = (
        select(OutboxEmail.body_id)
        .where(OutboxEmail.body_id.is_not(None), _kept_outbox(outbox_cutoff))
        .distinct()
    )
    in_ledger = (
        select(DigestDelivery.body_id)
        .where(DigestDelivery.body_id.is_not(None), DigestDelivery.window_end >= runs_cutoff)
        .distinct()
    )
    return select(EmailBody.id).where(
        EmailBody.created_at < cutoff,
        EmailBody.id.not_in(in_outbox),
        EmailBody.id.not_in(in_ledger),
    )


def purge_bodies(cutoff: datetime, runs_cutoff: datetime, limit: int) -> int:
    return _delete_ids(EmailBody, unused_body_ids(cutoff, runs_cutoff), limit)


# -- ledgers and runs ------------------------------------------------------------------------


def _superseded(cutoff: datetime) -> Any:
    """Ledger rows before ``cutoff`` that are not their subscriber's latest at their
    frequency."""
    later = aliased(DigestDelivery)
    return and_(
        DigestDelivery.window_end < cutoff,
        exists().where(
            later.subscriber_id == DigestDelivery.subscriber_id,
            later.frequency == DigestDelivery.frequency,
            later.window_end > DigestDelivery.window_end,
        ),
    )


def count_digest_deliveries(cutoff: datetime) -> int:
    return db.session.scalar(select(func.count()).where(_superseded(cutoff))) or 0


def subscriber_id_bounds() -> tuple[int, int] | None:
    low, high = db.session.execute(
        select(func.min(DigestDelivery.subscriber_id), func.max(DigestDelivery.subscriber_id))
    ).one()
    return None if low is None else (low, high)


def purge_digest_deliveries(cutoff: datetime, first: int, last: int) -> int:
    """Superseded ledger rows of subscribers ``first`` to ``last`` (a range, not a limit:
    the ledger's key leads with the subscriber)."""
    result = db.session.execute(
        delete(DigestDelivery)
        .where(DigestDelivery.subscriber_id.between(first, last), _superseded(cutoff))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def old_alert_delivery_ids(cutoff: datetime) -> Select[Any]:
    waiting_for_digest = and_(AlertDelivery.carried_over, AlertDelivery.digest_run_id.is_(None))
    return select(AlertDelivery.id).where(
        AlertDelivery.created_at < cutoff, not_(waiting_for_digest)
    )


def purge_alert_deliveries(cutoff: datetime, limit: int) -> int:
    return _delete_ids(AlertDelivery, old_alert_delivery_ids(cutoff), limit)


def old_run_ids(cutoff: datetime, outbox_cutoff: datetime | None = None) -> Select[Any]:
    return select(DigestRun.id).where(
        DigestRun.window_end < cutoff,
        DigestRun.status == RunStatus.PLANNED,
        DigestRun.parked_at.is_(None),
        ~exists().where(OutboxEmail.run_id == DigestRun.id, _kept_outbox(outbox_cutoff)),
    )


def purge_runs(cutoff: datetime, limit: int) -> int:
    """Old runs; their slots go with them (``ON DELETE CASCADE``)."""
    return _delete_ids(DigestRun, old_run_ids(cutoff), limit)


# -- addresses of people who have left --------------------------------------------------------


def left_subscriber_ids(cutoff: datetime) -> Select[Any]:
    """Subscribers, not yet erased, with no live subscription, none ended and no signup
    asked for since ``cutoff``, and known since before it."""
    return select(Subscriber.id).where(
        Subscriber.erased_at.is_(None),
        Subscriber.created_at < cutoff,
        ~exists().where(
            Subscription.subscriber_id == Subscriber.id,
            or_(Subscription.ended_at.is_(None), Subscription.ended_at >= cutoff),
        ),
        ~exists().where(
            SignupRequest.subscriber_id == Subscriber.id, SignupRequest.created_at >= cutoff
        ),
    )


def blank_left_addresses(cutoff: datetime, limit: int) -> int:
    """Blank the addresses of up to ``limit`` people who left before ``cutoff``, as erasing
    them would (``erase_subscriber``: the one place that knows everywhere an address is
    kept), so nothing of theirs outlives the retention period."""
    subscribers = list(
        db.session.scalars(
            select(Subscriber)
            .where(Subscriber.id.in_(left_subscriber_ids(cutoff).limit(limit).scalar_subquery()))
            .order_by(Subscriber.id)
        )
    )
    for subscriber in subscribers:
        erase_subscriber(subscriber)
    db.session.flush()
    return len(subscribers)


def count_would_purge(cutoffs: Cutoffs) -> PurgeCounts:
    """What a purge would do now, read only."""
    return PurgeCounts(
        outbox_emails=_count(old_outbox_ids(cutoffs.outbox)),
        email_bodies=_count(unused_body_ids(cutoffs.outbox, cutoffs.runs, cutoffs.outbox)),
        digest_deliveries=count_digest_deliveries(cutoffs.runs),
        alert_deliveries=_count(old_alert_delivery_ids(cutoffs.alerts)),
        digest_runs=_count(old_run_ids(cutoffs.runs, cutoffs.outbox)),
        addresses_blanked=_count(left_subscriber_ids(cutoffs.unsubscribed)),
    )
