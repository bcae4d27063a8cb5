"""Feeds: fetching them safely, reading them, polling them on a schedule, and their health.

Fetching treats every feed URL as hostile: only http(s), the host resolved and refused if
it is a private, loopback, link-local or otherwise non-public address (unless
``FEEDS_ALLOW_PRIVATE_ADDRESSES``), every redirect checked the same way and counted, one
deadline for the whole fetch, and the body streamed and abandoned at ``FEEDS_MAX_BYTES``
(counted after decompression, so a gzip bomb stops there too). Conditional GET
(``If-None-Match`` / ``If-Modified-Since``) makes an unchanged feed a 304; a server that
ignores it but sends the same bytes costs a hash comparison. Neither writes any article.

The address check resolves the host just before each request; httpx resolves it again to
connect, so a DNS server that answers differently within that gap (DNS rebinding) is not
stopped. Feeds are added by operators, which bounds the risk.
"""

from __future__ import annotations

import calendar
import enum
import hashlib
import ipaddress
import logging
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
import httpx
from flask import current_app
from sqlalchemy import or_, select, update

from alertsvc.articles.services import ArticleInput, IngestResult, ingest_articles
from alertsvc.extensions import db
from alertsvc.models import ArticleSource, Feed, Topic
from alertsvc.retries import RetryPolicy
from alertsvc.topics.services import SLUG_PATTERN

log = logging.getLogger(__name__)

REDIRECTS = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECTS = frozenset({301, 308})
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)


class FeedError(Exception):
    """A feed could not be fetched or read. The message is for an operator."""


class RefusedURL(FeedError):
    """A URL the service will not fetch (scheme or address)."""


@dataclass(frozen=True)
class FetchSettings:
    timeout: float
    max_bytes: int
    max_redirects: int
    allow_private: bool
    user_agent: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FetchSettings:
        return cls(
            timeout=float(config["FEEDS_TIMEOUT_SECONDS"]),
            max_bytes=int(config["FEEDS_MAX_BYTES"]),
            max_redirects=int(config["FEEDS_MAX_REDIRECTS"]),
            allow_private=bool(config["FEEDS_ALLOW_PRIVATE_ADDRESSES"]),
            user_agent=f"alertsvc feed reader (+{config['BASE_URL']})",
        )


# -- fetching --------------------------------------------------------------------------------


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, *, allow_private: bool) -> None:
    """Raise :class:`RefusedURL` unless ``url`` is http(s) to a host we may fetch from."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise RefusedURL(f"not a valid URL: {url!r}") from error
    if parts.scheme.lower() not in ("http", "https"):
        raise RefusedURL(f"only http and https feeds can be fetched, not {parts.scheme or '?'}:")
    host = parts.hostname
    if not host:
        raise RefusedURL(f"no host in {url!r}")
    if allow_private:
        return
    default_port = 443 if parts.scheme.lower() == "https" else 80
    try:
        addresses = {
            info[4][0]
            for info in socket.getaddrinfo(host, port or default_port, type=socket.SOCK_STREAM)
        }
    except (socket.gaierror, UnicodeError) as error:
        raise FeedError(f"cannot resolve {host}: {error}") from error
    refused = sorted(address for address in addresses if not _is_public(address))
    if refused:
        raise RefusedURL(
            f"{host} resolves to a private, loopback or reserved address ({', '.join(refused)})"
        )


@dataclass
class Fetched:
    """A fetch's outcome: a 200 with its body, or a 304 with none."""

    status: int
    url: str
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    # Where the feed now lives, when every redirect on the way was permanent (301, 308).
    moved_to: str | None = None


def fetch_feed(
    url: str,
    settings: FetchSettings,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
) -> Fetched:
    """GET a feed under the rules in the module docstring; raise :class:`FeedError` if not."""
    deadline = time.monotonic() + settings.timeout
    headers = {"User-Agent": settings.user_agent, "Accept": ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    current = url
    permanent = True  # every redirect so far was 301 or 308
    try:
        with httpx.Client(
            timeout=httpx.Timeout(settings.timeout), follow_redirects=False, trust_env=False
        ) as client:
            for _hop in range(settings.max_redirects + 1):
                check_url(current, allow_private=settings.allow_private)
                with client.stream("GET", current, headers=headers) as response:
                    moved_to = current if permanent and current != url else None
                    if response.status_code == 304:
                        return Fetched(304, current, moved_to=moved_to)
                    if response.status_code in REDIRECTS:
                        location = response.headers.get("location")
                        if not location:
                            raise FeedError(f"HTTP {response.status_code} with no Location")
                        permanent = permanent and response.status_code in PERMANENT_REDIRECTS
                        current = urljoin(current, location)
                        continue
                    if response.status_code != 200:
                        raise FeedError(
                            f"HTTP {response.status_code} {response.reason_phrase} from {current}"
                        )
                    body = _read_capped(response, settings.max_bytes, deadline, settings.timeout)
                    return Fetched(
                        200,
                        current,
                        body,
                        etag=response.headers.get("etag"),
                        last_modified=response.headers.get("last-modified"),
                        content_type=response.headers.get("content-type"),
                        moved_to=moved_to,
                    )
    except httpx.TimeoutException as error:
        raise FeedError(
            f"no answer within {settings.timeout:g} s ({type(error).__name__})"
        ) from error
    except httpx.HTTPError as error:
        raise FeedError(f"{type(error).__name__}: {error}") from error
    raise FeedError(f"more than {settings.max_redirects} redirects (last to {current})")


def _read_capped(response: httpx.Response, limit: int, deadline: float, timeout: float) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise FeedError(f"the feed is larger than the {limit:,}-byte limit ({declared} bytes)")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise FeedError(f"the feed is larger than the {limit:,}-byte limit")
        if time.monotonic() > deadline:
            raise FeedError(f"the feed took longer than {timeout:g} s to download")
        chunks.append(chunk)
    return b"".join(chunks)


# -- reading ---------------------------------------------------------------------------------


@dataclass
class ParsedFeed:
    title: str
    items: list[ArticleInput] = field(default_factory=list)


def _when(value: time.struct_time | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromtimestamp(calendar.timegm(value), UTC)


def parse_feed(body: bytes, url: str, content_type: str | None = None) -> ParsedFeed:
    """Read RSS 0.9x/1.0/2.0 or Atom bytes into articles. Raise :class:`FeedError` if not a feed.

    Slightly malformed feeds that feedparser can still read are accepted (many real feeds
    are); anything it cannot recognise as a feed at all is an error. An item's summary is its
    description (or Atom summary), else its full content (``content:encoded``); a
    publication date in the future is taken as now.

    feedparser's own HTML sanitiser and link rewriting are off: they are most of its time on
    a big feed, and ``clean_summary`` does both (nh3, links made absolute) on what we keep.
    """
    parsed = feedparser.parse(
        body,
        response_headers={
            "content-location": url,
            "content-type": content_type or "application/xml",
        },
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    if not parsed.get("version"):
        problem = parsed.get("bozo_exception")
        raise FeedError(f"not an RSS or Atom feed{f': {problem}' if problem else ''}")
    now = datetime.now(UTC)
    items = []
    for entry in parsed.entries:
        summary = entry.get("summary") or ""
        if not summary and entry.get("content"):
            summary = entry["content"][0].get("value", "")
        # dict.get: feedparser's own get() maps a missing updated_parsed to published_parsed.
        updated = _when(dict.get(entry, "updated_parsed"))
        published = _when(dict.get(entry, "published_parsed")) or updated
        items.append(
            ArticleInput(
                title=entry.get("title", ""),
                title_is_html=entry.get("title_detail", {}).get("type") == "text/html",
                url=entry.get("link", ""),
                guid=entry.get("id") or None,
                summary=summary,
                author=entry.get("author", ""),
                published_at=min(published, now) if published else None,
                updated_at=updated,
                categories=[
                    tag.get("term") or tag.get("label")
                    for tag in entry.get("tags", [])
                    if tag.get("term") or tag.get("label")
                ],
            )
        )
    return ParsedFeed(title=parsed.feed.get("title", ""), items=items)


# -- feeds and their health ------------------------------------------------------------------


def add_feed(url: str, topic_slugs: Sequence[str], title: str = "") -> Feed:
    """A feed to poll; its articles join ``topic_slugs`` (plus category and keyword topics)."""
    url = url.strip()
    check_url(url, allow_private=bool(current_app.config["FEEDS_ALLOW_PRIVATE_ADDRESSES"]))
    if len(url) > 2048:
        raise FeedError("the URL is longer than 2048 characters")
    if db.session.scalar(select(Feed.id).where(Feed.url == url)) is not None:
        raise FeedError(f"the feed {url} is already added")
    slugs = list(dict.fromkeys(topic_slugs))
    possible = [slug for slug in slugs if SLUG_PATTERN.match(slug)]
    topics = list(db.session.scalars(select(Topic).where(Topic.slug.in_(possible))))
    unknown = set(slugs) - {topic.slug for topic in topics}
    if unknown:
        raise FeedError(f"no such topic: {', '.join(sorted(unknown))}")
    feed = Feed(url=url, title=title.strip()[:500], topics=topics, consecutive_failures=0)
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
        if feed.parked_at:
            problems.append(
                f"PARKED since {feed.parked_at:%Y-%m-%d %H:%M} UTC: not polled until"
                f" retried (alertsvc feeds retry {feed.id})"
            )
        if self.is_failing(feed):
            problems.append(f"FAILING: {feed.consecutive_failures} errors in a row")
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
