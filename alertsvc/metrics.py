"""Prometheus metrics: what the worker and poller count as they go, and what the database
says at the moment of a scrape.

Two kinds, for two reasons:

* **Counters and histograms** (emails queued; emails sent, failed, suppressed and retried;
  send latency; feed poll errors) are counted where the thing happens, in the web, worker
  or scheduler process. Under gunicorn, and when the worker and scheduler run on the same machine as
  the web process, ``PROMETHEUS_MULTIPROC_DIR`` (set before the process starts) makes
  every process write to files there that ``/metrics`` adds up (prometheus_client's
  multiprocess mode). Without it, ``/metrics`` shows this process's own counts.
* **Gauges read from the database at scrape time** (outbox depth per status and the age
  of the oldest queued email, the latest digest run of each frequency, parked jobs,
  sending pauses) are true for the whole fleet, however many machines it runs on, and
  need no files. The scrape reads only the unfinished rows (an index on status), never
  the final ones, which grow by millions a day.

Emails queued are counted as the transaction that queued them commits (``count_queued``):
a digest run or an alert queues thousands in one set-based insert, and a transaction
rolled back queued nothing.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, Pool, event, func, select

from alertsvc.extensions import db
from alertsvc.models import (
    DigestRun,
    OutboxEmail,
    OutboxStatus,
    RunStatus,
    SendingPause,
    utcnow,
)
from alertsvc.retries import parked_counts

# This process's metrics. Not the library's default registry: under multiprocess mode the
# scrape reads the files instead, and registering these there too would count them twice.
PROCESS_REGISTRY = CollectorRegistry(auto_describe=True)

EMAILS_QUEUED = Counter(
    "alertsvc_emails_queued",
    "Emails added to the outbox, by kind: digest, alert, or the template of any other "
    "email (confirm, manage_link, ...).",
    ["kind"],
    registry=PROCESS_REGISTRY,
)
EMAILS = Counter(
    "alertsvc_emails",
    "Outbox emails a worker finished with, by result: sent, failed (for good), "
    "suppressed (not sent: the address is suppressed), retried (to be tried again).",
    ["result"],
    registry=PROCESS_REGISTRY,
)
SEND_SECONDS = Histogram(
    "alertsvc_send_seconds",
    "Time the mail transport took to accept one email, failed sends included.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=PROCESS_REGISTRY,
)
FEED_POLL_ERRORS = Counter(
    "alertsvc_feed_poll_errors",
    "Feed polls that failed (fetch, parse or store).",
    registry=PROCESS_REGISTRY,
)

UNFINISHED = (OutboxStatus.QUEUED, OutboxStatus.SENDING)


def count_emails(*, sent: int = 0, failed: int = 0, suppressed: int = 0, retried: int = 0) -> None:
    """Count a batch's results, once they are committed."""
    for result, amount in (
        ("sent", sent),
        ("failed", failed),
        ("suppressed", suppressed),
        ("retried", retried),
    ):
        if amount:
            EMAILS.labels(result).inc(amount)


# Emails queued in a connection's transaction, by kind, until it commits or rolls back.
_QUEUED = "alertsvc_emails_queued"


def count_queued(connection: Connection, kind: str, amount: int = 1) -> None:
    """Count ``amount`` emails of ``kind`` queued in ``connection``'s transaction: they are
    added to ``alertsvc_emails_queued_total`` when it commits, and forgotten if it rolls
    back."""
    if amount:
        pending: collections.Counter[str] = connection.info.setdefault(
            _QUEUED, collections.Counter()
        )
        pending[kind] += amount


@event.listens_for(Engine, "commit")
def _count_committed(connection: Connection) -> None:
    # Just before the database commits: a commit that then fails would be counted, a
    # rare miscount that an after-the-fact hook (SQLAlchemy has none per connection)
    # would avoid.
    pending = connection.info.pop(_QUEUED, None)
    for kind, amount in (pending or {}).items():
        EMAILS_QUEUED.labels(kind).inc(amount)


@event.listens_for(Engine, "rollback")
def _forget_rolled_back(connection: Connection) -> None:
    """A connection the database dropped is invalidated: reading its ``info`` would raise
    (the rollback that ends it would then fail), and the pool clears ``info`` when it
    replaces the connection, so there is nothing to forget."""
    if not connection.invalidated:
        connection.info.pop(_QUEUED, None)


@event.listens_for(Pool, "reset")
def _forget_on_return(dbapi_connection: Any, record: Any, reset_state: Any) -> None:
    """A connection given back to the pool unfinished is rolled back by the pool, which
    the rollback event does not see. ``info`` lives with the pooled connection."""
    record.info.pop(_QUEUED, None)


def _age(now: datetime, then: datetime | None) -> float:
    return max((now - then).total_seconds(), 0.0) if then else 0.0


class DatabaseCollector(Collector):
    """Gauges from a handful of small queries, run at each scrape (in the web process)."""

    def collect(self) -> Iterator[Metric]:
        now = utcnow()
        session = db.session
        depth = GaugeMetricFamily(
            "alertsvc_outbox_emails",
            "Outbox emails not yet finished, by status (queued, sending).",
            labels=["status"],
        )
        oldest = GaugeMetricFamily(
            "alertsvc_outbox_oldest_queued_age_seconds",
            "Age of the oldest email still queued or being sent (0 when there is none).",
        )
        found = dict.fromkeys(UNFINISHED, 0)
        first: datetime | None = None
        for status, count, created in session.execute(
            select(OutboxEmail.status, func.count(), func.min(OutboxEmail.created_at))
            .where(OutboxEmail.status.in_(UNFINISHED))
            .group_by(OutboxEmail.status)
        ):
            found[OutboxStatus(status)] = count
            if created is not None and (first is None or created < first):
                first = created
        for status, count in found.items():
            depth.add_metric([status.value], count)
        oldest.add_metric([], _age(now, first))
        yield depth
        yield GaugeMetricFamily(
            "alertsvc_outbox_depth",
            "Outbox emails queued or being sent.",
            value=sum(found.values()),
        )
        yield oldest
        yield from self._runs()
        yield from self._parked()
        paused = GaugeMetricFamily(
            "alertsvc_sending_paused",
            "1 while a pause of this scope is in force.",
            labels=["scope"],
        )
        in_force = set(
            session.scalars(select(SendingPause.scope).where(SendingPause.resumed_at.is_(None)))
        )
        for scope in ("subscriptions", "all"):
            paused.add_metric([scope], 1 if scope in in_force else 0)
        yield paused

    def _runs(self) -> Iterator[Metric]:
        duration = GaugeMetricFamily(
            "alertsvc_digest_run_duration_seconds",
            "How long the latest planned digest run of each frequency took to plan.",
            labels=["frequency"],
        )
        emails = GaugeMetricFamily(
            "alertsvc_digest_run_emails",
            "Emails queued by the latest planned digest run of each frequency.",
            labels=["frequency"],
        )
        subscribers = GaugeMetricFamily(
            "alertsvc_digest_run_subscribers",
            "Subscribers served by the latest planned digest run of each frequency.",
            labels=["frequency"],
        )
        latest = (
            select(DigestRun.frequency, func.max(DigestRun.window_end).label("end"))
            .where(DigestRun.status == RunStatus.PLANNED)
            .group_by(DigestRun.frequency)
            .subquery()
        )
        for run in db.session.scalars(
            select(DigestRun).join(
                latest,
                (DigestRun.frequency == latest.c.frequency)
                & (DigestRun.window_end == latest.c.end),
            )
        ):
            labels = [run.frequency]
            duration.add_metric(labels, _age(run.planned_at or run.created_at, run.created_at))
            emails.add_metric(labels, run.email_count)
            subscribers.add_metric(labels, run.subscriber_count)
        yield duration
        yield emails
        yield subscribers

    def _parked(self) -> Iterator[Metric]:
        parked = GaugeMetricFamily(
            "alertsvc_parked_jobs",
            "Work given up on after repeated failures, waiting for an operator: articles' "
            "immediate alerts, digest runs, feeds.",
            labels=["kind"],
        )
        for kind, count in parked_counts().items():
            parked.add_metric([kind], count)
        yield parked


class _ThisProcess(Collector):
    def collect(self) -> Iterator[Metric]:
        return PROCESS_REGISTRY.collect()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def scrape() -> bytes:
    """The metrics page: every process's counts (multiprocess mode) or this process's,
    then the database's gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(DatabaseCollector())
    try:
        return generate_latest(registry)
    finally:
        db.session.rollback()
