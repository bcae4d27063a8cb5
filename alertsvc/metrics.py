"""Prometheus metrics: what the worker and poller count as they go, and what the database
says at the moment of a scrape.

Two kinds, for two reasons:

* **Counters and histograms** (emails sent, failed, suppressed and retried, send latency,
  feed poll errors) are counted where the thing happens, in the worker or scheduler
  process. Under gunicorn, and when the worker and scheduler run on the same machine as
  the web process, ``PROMETHEUS_MULTIPROC_DIR`` (set before the process starts) makes
  every process write to files there that ``/metrics`` adds up (prometheus_client's
  multiprocess mode). Without it, ``/metrics`` shows this process's own counts.
* **Gauges read from the database at scrape time** (outbox depth per status and the age
  of the oldest queued email, the latest digest run of each frequency, parked jobs,
  sending pauses) are true for the whole fleet, however many machines it runs on, and
  need no files. Emails *queued* are one of these (``alertsvc_outbox_emails``): rows are
  queued by set-based inserts in several places (digest runs, alerts, signup), and the
  depth of the queue is what an operator acts on. The scrape reads only the unfinished
  rows (an index on status), never the final ones, which grow by millions a day.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

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
