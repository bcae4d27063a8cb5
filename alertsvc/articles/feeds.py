"""Feed records, their health and polling: adding feeds, claiming one to poll, and storing
what a poll found (articles, validators, failures with backoff and parking).

A poll fetches with :mod:`alertsvc.articles.fetching` and reads with
:mod:`alertsvc.articles.parsing`. An unchanged feed costs a 304, or a hash comparison when
the server ignores conditional GET; neither writes any article.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import or_, select, update

from alertsvc.articles.fetching import FeedError, Fetched, check_url
from alertsvc.articles.parsing import parse_feed
from alertsvc.articles.services import IngestResult, ingest_articles
from alertsvc.extensions import db
from alertsvc.html import collapse
from alertsvc.models import ArticleSource, Feed, Topic
from alertsvc.retries import RetryPolicy
from alertsvc.text import plural
from alertsvc.topics.services import SLUG_PATTERN

log = logging.getLogger(__name__)


def add_feed(url: str, topic_slugs: Sequence[str], title: str = "") -> Feed:
    """A feed to poll; its articles join ``topic_slugs`` (plus category and keyword topics).

    The cheap local checks (topics, length, duplicates) come before the URL check, which
    may look the host up in DNS: a typo in a slug is reported as such, not hidden behind
    "cannot resolve".
    """
    url = url.strip()
    topics = _topics_by_slug(topic_slugs)
    if len(url) > 2048:
        raise FeedError("the URL is longer than 2048 characters")
    if db.session.scalar(select(Feed.id).where(Feed.url == url)) is not None:
        raise FeedError(f"the feed {url} is already added")
    check_url(url, allow_private=bool(current_app.config["FEEDS_ALLOW_PRIVATE_ADDRESSES"]))
    feed = Feed(url=url, title=collapse(title)[:500], topics=topics, consecutive_failures=0)
    db.session.add(feed)
    db.session.flush()
    return feed


@dataclass(frozen=True)
class HealthRules:
    failure_threshold: int
    stale_days: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> HealthRules:
        return cls(int(config["FEEDS_FAILURE_THRESHOLD"]), int(config["FEEDS_STALE_DAYS"]))

    def is_failing(self, feed: Feed) -> bool:
        return feed.consecutive_failures >= self.failure_threshold

    def is_stale(self, feed: Feed, now: datetime) -> bool:
        """Nothing new for ``stale_days``: the newest item (or, with none, the feed) is older."""
        reference = feed.newest_item_at or feed.created_at
        return reference is not None and now - reference > timedelta(days=self.stale_days)

    def problems(self, feed: Feed, now: datetime) -> list[str]:
        problems = []
        if feed.disabled_at:
            problems.append(
                f"DISABLED since {feed.disabled_at:%Y-%m-%d %H:%M} UTC: not polled until"
                f" enabled at /admin/feeds/{feed.id}"
            )
        if feed.parked_at:
            problems.append(
                f"PARKED since {feed.parked_at:%Y-%m-%d %H:%M} UTC: not polled until"
                f" retried (alertsvc feeds retry {feed.id})"
            )
        if self.is_failing(feed):
            problems.append(f"FAILING: {plural(feed.consecutive_failures, 'error')} in a row")
        if self.is_stale(feed, now):
            problems.append(f"STALE: nothing new for over {self.stale_days} days")
        return problems


def release_feed_for_retry(feed_id: int) -> Feed:
    """Un-park a feed and start its failure count again, so it can be polled now."""
    feed = db.session.get(Feed, feed_id)
    if feed is None:
        raise FeedError(f"No feed {feed_id}.")
    feed.parked_at = None
    feed.consecutive_failures = 0
    feed.next_poll_at = None
    return feed


def get_feed(feed_id: int) -> Feed:
    feed = db.session.get(Feed, feed_id)
    if feed is None:
        raise FeedError(f"No feed {feed_id}.")
    return feed


def _topics_by_slug(topic_slugs: Sequence[str]) -> list[Topic]:
    slugs = list(dict.fromkeys(topic_slugs))
    possible = [slug for slug in slugs if SLUG_PATTERN.match(slug)]
    topics = list(db.session.scalars(select(Topic).where(Topic.slug.in_(possible))))
    unknown = set(slugs) - {topic.slug for topic in topics}
    if unknown:
        raise FeedError(f"no such topic: {', '.join(sorted(unknown))}")
    return topics


def update_feed(feed: Feed, title: str, topic_slugs: Sequence[str]) -> None:
    """Change a feed's name (on one line, as every list shows it) and the topics its new
    articles join (articles already in stay in the topics they joined)."""
    title = collapse(title)
    if len(title) > 500:
        raise FeedError("the title must be at most 500 characters")
    feed.topics = _topics_by_slug(topic_slugs)
    feed.title = title


def disable_feed(feed: Feed, now: datetime) -> bool:
    """Stop polling a feed (the scheduler skips it) until enabled; False if already so."""
    if feed.disabled_at is not None:
        return False
    feed.disabled_at = now
    return True


def enable_feed(feed: Feed) -> bool:
    """Poll a disabled feed again, from the scheduler's next round; False if not disabled."""
    if feed.disabled_at is None:
        return False
    feed.disabled_at = None
    feed.next_poll_at = None
    return True


def list_feeds() -> list[Feed]:
    return list(db.session.scalars(select(Feed).order_by(Feed.id)))


def due_feed_ids(now: datetime) -> list[int]:
    return list(
        db.session.scalars(
            select(Feed.id)
            .where(
                or_(Feed.next_poll_at.is_(None), Feed.next_poll_at <= now),
                or_(Feed.poll_lease_until.is_(None), Feed.poll_lease_until < now),
                Feed.parked_at.is_(None),
                Feed.disabled_at.is_(None),
            )
            .order_by(Feed.next_poll_at.nulls_first(), Feed.id)
        )
    )


@dataclass(frozen=True)
class ClaimedFeed:
    """What a poll needs to know about the feed it claimed (read inside the claim)."""

    id: int
    url: str
    etag: str | None
    last_modified: str | None
    content_hash: str | None
    has_succeeded: bool


def claim_feed(
    feed_id: int, *, now: datetime, lease: timedelta, due_only: bool
) -> ClaimedFeed | None:
    """Take the poll lease on a feed with one conditional UPDATE, or None if someone holds it.

    The condition is re-checked under the row lock, so of two pollers racing for a feed
    exactly one gets it: one poll per feed at a time, across processes.
    """
    conditions = [
        Feed.id == feed_id,
        or_(Feed.poll_lease_until.is_(None), Feed.poll_lease_until < now),
    ]
    if due_only:
        conditions.append(or_(Feed.next_poll_at.is_(None), Feed.next_poll_at <= now))
        conditions.append(Feed.parked_at.is_(None))
        conditions.append(Feed.disabled_at.is_(None))
    claimed = db.session.execute(
        update(Feed)
        .where(*conditions)
        .values(poll_lease_until=now + lease)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        return None
    feed = db.session.get(Feed, feed_id, populate_existing=True)
    assert feed is not None
    return ClaimedFeed(
        id=feed.id,
        url=feed.url,
        etag=feed.etag,
        last_modified=feed.last_modified,
        content_hash=feed.content_hash,
        has_succeeded=feed.last_success_at is not None,
    )


class PollStatus(enum.StrEnum):
    FETCHED = "fetched"
    NOT_MODIFIED = "not modified"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    BUSY = "busy"


@dataclass
class PollResult:
    feed_id: int
    status: PollStatus
    url: str = ""
    ingest: IngestResult | None = None
    error: str | None = None

    def describe(self) -> str:
        if self.status == PollStatus.FETCHED and self.ingest is not None:
            return (
                f"{self.ingest.created} new, {self.ingest.updated} updated, "
                f"{self.ingest.unchanged} unchanged"
                + (f", {self.ingest.skipped} skipped" if self.ingest.skipped else "")
            )
        if self.status == PollStatus.FAILED:
            return f"error: {self.error}"
        if self.status == PollStatus.BUSY:
            return "skipped: being polled elsewhere (or not due)"
        return str(self.status)


def record_poll_success(
    claimed: ClaimedFeed, fetched: Fetched, *, now: datetime, interval: timedelta
) -> PollResult:
    """Store a successful fetch: its articles (if the body changed), validators and health."""
    feed = db.session.get(Feed, claimed.id)
    assert feed is not None
    rules = HealthRules.from_config(current_app.config)
    was_stale = feed.last_success_at is not None and rules.is_stale(feed, feed.last_success_at)
    result = PollResult(claimed.id, PollStatus.NOT_MODIFIED, claimed.url)
    if fetched.status == 200:
        digest = hashlib.sha256(fetched.body).hexdigest()
        if digest == claimed.content_hash:
            result.status = PollStatus.UNCHANGED
        else:
            parsed = parse_feed(fetched.body, fetched.url, fetched.content_type)
            result.ingest = ingest_articles(
                parsed.items,
                ArticleSource.FEED,
                feed_id=feed.id,
                alert=claimed.has_succeeded,
                now=now,
            )
            result.status = PollStatus.FETCHED
            if not feed.title and parsed.title:
                feed.title = parsed.title.strip()[:500]
            newest = result.ingest.newest_published_at
            if newest and (feed.newest_item_at is None or newest > feed.newest_item_at):
                feed.newest_item_at = newest
            feed.content_hash = digest
        feed.etag = (fetched.etag or "")[:500] or None
        feed.last_modified = (fetched.last_modified or "")[:100] or None
    if fetched.moved_to:
        _follow_move(feed, fetched.moved_to)
    feed.last_polled_at = now
    feed.last_success_at = now
    feed.consecutive_failures = 0
    feed.parked_at = None
    feed.next_poll_at = now + interval
    feed.poll_lease_until = None
    if rules.is_stale(feed, now) and not was_stale:
        log.warning(
            "feed %s (%s) is stale: nothing new for over %s days",
            feed.id,
            feed.url,
            rules.stale_days,
        )
    return result


def _follow_move(feed: Feed, url: str) -> None:
    """A feed that redirected permanently is polled at its new address from now on, unless
    another feed is already there (then both stay as they are, and the log says so)."""
    if db.session.scalar(select(Feed.id).where(Feed.url == url, Feed.id != feed.id)):
        log.warning(
            "feed %s (%s) has moved permanently to %s, which is already another feed",
            feed.id,
            feed.url,
            url,
        )
        return
    log.info("feed %s has moved permanently from %s to %s", feed.id, feed.url, url)
    feed.url = url[:2048]


def failure_policy(interval: timedelta) -> RetryPolicy:
    """The shared retry policy at a feed's pace: the usual interval after one failure,
    doubling with each further one, up to ``FEEDS_MAX_BACKOFF_SECONDS``; parked after
    ``JOB_MAX_ATTEMPTS`` in a row."""
    longest = timedelta(seconds=float(current_app.config["FEEDS_MAX_BACKOFF_SECONDS"]))
    return RetryPolicy.from_config(current_app.config, base=interval, longest=longest)


def record_poll_failure(feed_id: int, error: str, *, now: datetime, interval: timedelta) -> None:
    """Count a failed poll and back off, parking the feed after too many in a row; warn
    when the feed reaches the failure threshold (and each multiple of it), not on every
    failure, so a dead feed does not flood the log.
    """
    feed = db.session.get(Feed, feed_id)
    if feed is None:
        return
    failure = failure_policy(interval).failed(feed.consecutive_failures or 0, error, now)
    feed.last_polled_at = now
    feed.last_error = failure.error
    feed.last_error_at = now
    feed.consecutive_failures = failure.attempts
    feed.next_poll_at = failure.next_attempt_at
    feed.poll_lease_until = None
    if failure.parked_at and feed.parked_at is None:
        feed.parked_at = failure.parked_at
        log.error(
            "feed %s (%s) parked after %s failed polls in a row; last error: %s",
            feed.id,
            feed.url,
            failure.attempts,
            error,
        )
    threshold = HealthRules.from_config(current_app.config).failure_threshold
    if threshold and feed.consecutive_failures % threshold == 0:
        log.warning(
            "feed %s (%s) has failed %s times in a row; last error: %s",
            feed.id,
            feed.url,
            feed.consecutive_failures,
            error,
        )
