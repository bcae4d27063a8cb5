"""Scheduled jobs for digests and immediate alerts: the entry points that own transactions.

Each unit of work (one article's alerts, one digest run) commits or rolls back alone. A
unit that fails is logged with its id, its failure recorded on its row in a transaction
of its own, and the loop goes on; ``alertsvc.retries`` decides when it is tried again and
when it is parked for an operator. ``plan_run`` and ``alert_one_article`` raise instead:
they serve the CLI, where the operator sees the error at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select
from structlog.contextvars import bound_contextvars

from alertsvc.database import transaction
from alertsvc.digests import alerts, runs
from alertsvc.digests.alerts import AlertResult
from alertsvc.digests.planning import (
    DIGEST_FREQUENCIES,
    PlanResult,
    plan_digest_run,
    planning_connection_count,
    run_lock,
    start_digest_run,
)
from alertsvc.digests.schedule import floor_hour
from alertsvc.digests.timezones import subscriber_timezones
from alertsvc.extensions import db
from alertsvc.models import DigestRun, utcnow
from alertsvc.retries import RetryPolicy, describe_error

log = logging.getLogger(__name__)


# -- digest runs -----------------------------------------------------------------------------


def plan_run(
    frequency: str,
    window_end: datetime,
    *,
    trigger: str = "scheduler",
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> PlanResult:
    """Start (or find) the run for ``window_end`` and plan it; raise if planning fails.

    The run and its slots commit first; then the planner gets connections of its own,
    opened here, commits its chunks on them, and the run's status commits last. A dry run
    works out the slots in the session's transaction and rolls all of it back.
    """
    if dry_run:
        try:
            run = start_digest_run(frequency, window_end, trigger)
            db.session.flush()
            return plan_digest_run(run, [db.session.connection()], dry_run=True, progress=progress)
        finally:
            db.session.rollback()
    with transaction():
        run = start_digest_run(frequency, window_end, trigger)
    with transaction(), ExitStack() as stack:
        stack.enter_context(bound_contextvars(run_id=run.id, frequency=frequency))
        connections = [
            stack.enter_context(db.engine.connect()) for _ in range(planning_connection_count())
        ]
        with run_lock(connections[0], run.id):
            result = plan_digest_run(run, connections, progress=progress)
            connections[0].commit()
    return result


def _attempt_run(
    frequency: str, window_end: datetime, trigger: str, now: datetime, policy: RetryPolicy
) -> PlanResult | None:
    """One run as a unit of scheduled work: planned, or its failure recorded."""
    try:
        return plan_run(frequency, window_end, trigger=trigger)
    except Exception as error:
        message = describe_error(error)
        log.exception("digest run %s %s failed", frequency, f"{window_end:%Y-%m-%d %H:%M}")
        with transaction():
            failure = runs.record_run_failure(
                frequency, window_end, message, now=now, policy=policy, trigger=trigger
            )
        if failure.parked_at:
            log.error(
                "digest run %s %s parked after %s attempts: %s",
                frequency,
                f"{window_end:%Y-%m-%d %H:%M}",
                failure.attempts,
                message,
            )
        return None


def plan_due_digests(now: datetime | None = None) -> list[PlanResult]:
    """The hourly job: the daily and the weekly run for the hour that has just ended, each
    alone (a daily run that fails does not keep the weekly run from going)."""
    moment = now or utcnow()
    policy = RetryPolicy.from_config(current_app.config)
    results = [
        _attempt_run(frequency, floor_hour(moment), "scheduler", moment, policy)
        for frequency in DIGEST_FREQUENCIES
    ]
    return [result for result in results if result is not None]


def sweep_digest_runs(now: datetime | None = None) -> list[PlanResult]:
    """Finish runs left half-planned, and create runs missed while nothing was running.

    Looks back ``DIGEST_LOOKBACK_HOURS``; older missed hours are not sent (their
    subscribers' next digest still covers those articles, as windows chain). Each run is
    a unit of its own: one that fails is recorded and the sweep goes on; a failed run is
    resumed once its next attempt is due, and not at all once parked.
    """
    moment = now or utcnow()
    hour_now = floor_hour(moment)
    lookback = timedelta(hours=current_app.config["DIGEST_LOOKBACK_HOURS"])
    policy = RetryPolicy.from_config(current_app.config)
    with transaction():
        unfinished = runs.runs_to_resume(hour_now - lookback, moment)
        existing = {
            (frequency, window_end)
            for frequency, window_end in db.session.execute(
                select(DigestRun.frequency, DigestRun.window_end).where(
                    DigestRun.window_end > hour_now - lookback
                )
            )
        }
    wanted = list(unfinished)
    for frequency in DIGEST_FREQUENCIES:
        hour = hour_now - lookback + timedelta(hours=1)
        while hour <= hour_now:
            if (frequency, hour) not in existing:
                wanted.append((frequency, hour))
            hour += timedelta(hours=1)
    results = [
        _attempt_run(frequency, window_end, "sweeper", moment, policy)
        for frequency, window_end in wanted
    ]
    return [result for result in results if result is not None]


def retry_run(run_id: int, *, progress: Callable[[int, int], None] | None = None) -> PlanResult:
    """An operator's retry: un-park the run and plan it now. Raises ``runs.RunError`` for
    a run that is not there or already planned, and the planning error if it fails again
    (recorded as its first new attempt)."""
    with transaction():
        run = runs.release_run_for_retry(run_id)
        frequency, window_end = run.frequency, run.window_end
    try:
        return plan_run(frequency, window_end, trigger="cli", progress=progress)
    except Exception as error:
        with transaction():
            runs.record_run_failure(
                frequency,
                window_end,
                describe_error(error),
                now=utcnow(),
                policy=RetryPolicy.from_config(current_app.config),
            )
        raise


# -- immediate alerts ------------------------------------------------------------------------


def run_immediate_alerts(now: datetime | None = None) -> AlertResult:
    """Alert every article revision not yet alerted, one transaction per article.

    An article that fails (a template error, bad data) is rolled back alone, its failure
    recorded, and the next article goes on; it is tried again in a later run once its
    backoff has passed.
    """
    started = time.perf_counter()
    moment = now or utcnow()
    policy = RetryPolicy.from_config(current_app.config)
    result = AlertResult()
    timezones = None  # looked up once per run, and only if there is an article
    failed: list[int] = []
    while True:
        article_id = None
        try:
            with transaction():
                article = alerts.claim_next_article(moment, skip=failed)
                if article is None:
                    break
                article_id = article.id
                if timezones is None:
                    timezones = subscriber_timezones()
                emails, carried = alerts.alert_article(article, moment, timezones)
                alerts.mark_article_alerted(article)
        except Exception as error:
            if article_id is None:
                raise  # no article to blame: the job itself cannot run
            failed.append(article_id)
            result.failed += 1
            _record_alert_failure(article_id, error, moment, policy)
            continue
        result.articles += 1
        result.emails += emails
        result.carried_over += carried
    result.seconds = time.perf_counter() - started
    return result


def _record_alert_failure(
    article_id: int, error: Exception, now: datetime, policy: RetryPolicy
) -> None:
    message = describe_error(error)
    log.error("immediate alerts for article %s failed: %s", article_id, message, exc_info=error)
    with transaction():
        failure = alerts.record_alert_failure(article_id, message, now=now, policy=policy)
    if failure is not None and failure.parked_at:
        log.error(
            "immediate alerts for article %s parked after %s attempts: %s",
            article_id,
            failure.attempts,
            message,
        )


def alert_one_article(article_id: int) -> AlertResult:
    """An operator's retry: un-park the article's alerts and queue them now. Raises
    ``alerts.AlertError`` for an article that is not there or already alerted, and the
    error if it fails again (recorded as its first new attempt)."""
    started = time.perf_counter()
    moment = utcnow()
    with transaction():
        alerts.release_article_for_retry(article_id)
    result = AlertResult()
    try:
        with transaction():
            article = alerts.claim_article(article_id)
            if article is None:
                raise alerts.AlertError(f"Article {article_id} is being alerted elsewhere.")
            emails, carried = alerts.alert_article(article, moment)
            alerts.mark_article_alerted(article)
    except alerts.AlertError:
        raise
    except Exception as error:
        _record_alert_failure(
            article_id, error, moment, RetryPolicy.from_config(current_app.config)
        )
        raise
    result.articles, result.emails, result.carried_over = 1, emails, carried
    result.seconds = time.perf_counter() - started
    return result
