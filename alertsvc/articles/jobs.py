"""Scheduled jobs for articles in: polling feeds. Entry points that own their transactions.

Each feed poll is a unit of its own: claimed in one short transaction, fetched with no
transaction open (a slow server must not hold database locks), its articles and health
written in a second. A feed that fails, however it fails, is recorded as failed (backing
off, then parked: ``alertsvc.retries``) and the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from flask import current_app

from alertsvc.articles.feeds import (
    PollResult,
    PollStatus,
    claim_feed,
    due_feed_ids,
    record_poll_failure,
    record_poll_success,
    release_feed_for_retry,
)
from alertsvc.articles.fetching import FeedError, FetchSettings, fetch_feed
from alertsvc.database import transaction
from alertsvc.metrics import FEED_POLL_ERRORS
from alertsvc.models import utcnow
from alertsvc.retries import describe_error

log = logging.getLogger(__name__)


def poll_feeds(feed_ids: Sequence[int] | None = None, *, due_only: bool = True) -> list[PollResult]:
    """Poll ``feed_ids``, or every feed that is due, ``FEEDS_POLL_CONCURRENCY`` at a time.

    It owns its transactions. Each feed is claimed in one short
    transaction, fetched with no transaction open (a slow server must not hold database
    locks), and its articles and health written in a second. A feed that fails, however it
    fails, is recorded as failed and the others go on. Results come in ``feed_ids`` order.
    """
    config = current_app.config
    settings = FetchSettings.from_config(config)
    interval = timedelta(seconds=float(config["FEEDS_POLL_INTERVAL_SECONDS"]))
    if feed_ids is None:
        with transaction():
            feed_ids = due_feed_ids(utcnow())

    def poll(feed_id: int) -> PollResult:
        try:
            return _poll_one(feed_id, due_only, settings, interval)
        except Exception as error:
            # Not even the failure could be recorded (the database went away): the other
            # feeds still go, and this one's lease runs out.
            log.exception("feed %s: poll could not be recorded", feed_id)
            return PollResult(feed_id, PollStatus.FAILED, error=describe_error(error))

    concurrency = max(1, int(config["FEEDS_POLL_CONCURRENCY"]))
    if concurrency == 1 or len(feed_ids) < 2:
        return [poll(feed_id) for feed_id in feed_ids]
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def in_context(feed_id: int) -> PollResult:
        with app.app_context():
            return poll(feed_id)

    with ThreadPoolExecutor(min(concurrency, len(feed_ids)), "feed-poll") as pool:
        return list(pool.map(in_context, feed_ids))


def _poll_one(
    feed_id: int, due_only: bool, settings: FetchSettings, interval: timedelta
) -> PollResult:
    lease = timedelta(seconds=settings.timeout * 2 + 300)
    now = utcnow()
    with transaction():
        claimed = claim_feed(feed_id, now=now, lease=lease, due_only=due_only)
    if claimed is None:
        return PollResult(feed_id, PollStatus.BUSY)
    try:
        fetched = fetch_feed(
            claimed.url, settings, etag=claimed.etag, last_modified=claimed.last_modified
        )
        with transaction():
            return record_poll_success(claimed, fetched, now=utcnow(), interval=interval)
    except Exception as error:
        FEED_POLL_ERRORS.inc()
        if isinstance(error, FeedError):
            message = str(error)
            log.info("feed %s (%s) failed: %s", feed_id, claimed.url, message)
        else:
            message = describe_error(error)
            log.exception("feed %s (%s) failed unexpectedly", feed_id, claimed.url)
        with transaction():
            record_poll_failure(feed_id, message, now=utcnow(), interval=interval)
        return PollResult(feed_id, PollStatus.FAILED, claimed.url, error=message)


def poll_due_feeds() -> str:
    """The scheduler job: poll every feed that is due. Returns a summary for the log."""
    results = poll_feeds()
    failed = sum(1 for result in results if result.status == PollStatus.FAILED)
    created = sum(result.ingest.created for result in results if result.ingest is not None)
    return f"{len(results)} feeds polled, {created} new articles, {failed} failed"


def retry_feed(feed_id: int) -> PollResult:
    """An operator's retry: un-park the feed and poll it now. Raises ``FeedError`` for a
    feed that is not there."""
    with transaction():
        release_feed_for_retry(feed_id)
    [result] = poll_feeds([feed_id], due_only=False)
    return result
