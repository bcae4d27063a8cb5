"""Figures for the dashboard (and the JSON API's ``stats``): plain functions returning
dataclasses, each figure one set-based query (GROUP BY), never a query per row.

Days are UTC calendar days. An email counts as queued on the day its row was written, as
sent on the day it was sent (``sent`` or ``delivered``), and as failed or suppressed on
the day it was last due to be tried (``next_attempt_at``: the outbox keeps no separate
time of failure, and a failed or suppressed row is not tried again after that).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, text

from alertsvc.delivery.pauses import describe_pause, pauses_in_force
from alertsvc.extensions import db
from alertsvc.models import (
    Article,
    DigestRun,
    Feed,
    Frequency,
    OutboxEmail,
    OutboxStatus,
    SignupRequest,
    Subscriber,
    Subscription,
    Topic,
)

FREQUENCIES = [frequency.value for frequency in Frequency]
PARKED_SHOWN = 20


@dataclass
class TopicSubscribers:
    """One topic's live subscriptions by frequency: of confirmed subscribers, and asked for
    in signups not yet confirmed."""

    topic_id: int
    slug: str
    name: str
    retired: bool
    confirmed: dict[str, int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)

    @property
    def confirmed_total(self) -> int:
        return sum(self.confirmed.values())

    @property
    def pending_total(self) -> int:
        return sum(self.pending.values())


def _utc_day(column: Any) -> ColumnElement[str]:
    """``YYYY-MM-DD`` of a timestamp, in UTC, on PostgreSQL (timestamptz) or SQLite (UTC
    text, as ``UTCDateTime`` stores it)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.substr(column, 1, 10)


def confirmed_subscription_counts() -> dict[int, dict[str, int]]:
    """topic id -> frequency -> live subscriptions of confirmed, not erased subscribers."""
    counts: dict[int, dict[str, int]] = {}
    for topic_id, frequency, number in db.session.execute(
        select(Subscription.topic_id, Subscription.frequency, func.count())
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(
            Subscription.ended_at.is_(None),
            Subscriber.confirmed_at.is_not(None),
            Subscriber.erased_at.is_(None),
        )
        .group_by(Subscription.topic_id, Subscription.frequency)
    ):
        counts.setdefault(topic_id, {})[frequency] = number
    return counts


def pending_signup_counts() -> dict[int, dict[str, int]]:
    """topic id -> frequency -> signups waiting for their confirm link to be clicked.

    A signup's topics are a JSON list, which the two databases expand differently; the
    rows are read in one query and counted here. Unconfirmed signups are deleted after a
    few days, so they stay few.
    """
    counts: dict[int, Counter[str]] = {}
    for topic_ids, frequency in db.session.execute(
        select(SignupRequest.topic_ids, SignupRequest.frequency)
        .join(Subscriber, Subscriber.id == SignupRequest.subscriber_id)
        .where(SignupRequest.confirmed_at.is_(None), Subscriber.erased_at.is_(None))
    ):
        for topic_id in set(topic_ids or []):
            counts.setdefault(topic_id, Counter())[frequency] += 1
    return {topic_id: dict(counter) for topic_id, counter in counts.items()}


def subscribers_by_topic() -> list[TopicSubscribers]:
    confirmed = confirmed_subscription_counts()
    pending = pending_signup_counts()
    return [
        TopicSubscribers(
            topic_id=topic_id,
            slug=slug,
            name=name,
            retired=retired_at is not None,
            confirmed=confirmed.get(topic_id, {}),
            pending=pending.get(topic_id, {}),
        )
        for topic_id, slug, name, retired_at in db.session.execute(
            select(Topic.id, Topic.slug, Topic.name, Topic.retired_at).order_by(Topic.name)
        )
    ]


@dataclass(frozen=True)
class DayEmails:
    day: date
    queued: int
    sent: int
    failed: int
    suppressed: int


def emails_per_day(now: datetime, days: int = 30) -> list[DayEmails]:
    """The last ``days`` UTC days, oldest first, today included, zeros where nothing
    happened."""
    first = now.date() - timedelta(days=days - 1)
    since = datetime.combine(first, datetime.min.time(), tzinfo=now.tzinfo)

    def per_day(column: Any, *where: ColumnElement[bool]) -> dict[str, int]:
        day = _utc_day(column)
        return dict(
            db.session.execute(
                select(day, func.count())
                .where(column >= since, column <= now, *where)
                .group_by(day)
            ).all()
        )

    queued = per_day(OutboxEmail.created_at)
    sent = per_day(
        OutboxEmail.sent_at,
        OutboxEmail.status.in_([OutboxStatus.SENT.value, OutboxStatus.DELIVERED.value]),
    )
    failed = per_day(OutboxEmail.next_attempt_at, OutboxEmail.status == OutboxStatus.FAILED.value)
    suppressed = per_day(
        OutboxEmail.next_attempt_at, OutboxEmail.status == OutboxStatus.SUPPRESSED.value
    )
    result = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        key = day.isoformat()
        result.append(
            DayEmails(
                day,
                queued.get(key, 0),
                sent.get(key, 0),
                failed.get(key, 0),
                suppressed.get(key, 0),
            )
        )
    return result


@dataclass(frozen=True)
class OutboxDepth:
    queued: int
    oldest_queued_at: datetime | None
    now: datetime

    @property
    def oldest_age(self) -> timedelta | None:
        return None if self.oldest_queued_at is None else self.now - self.oldest_queued_at


def outbox_depth(now: datetime) -> OutboxDepth:
    """Emails waiting to be sent (``queued``, including those waiting for a retry)."""
    queued, oldest = db.session.execute(
        select(func.count(), func.min(OutboxEmail.created_at)).where(
            OutboxEmail.status == OutboxStatus.QUEUED.value
        )
    ).one()
    return OutboxDepth(queued or 0, oldest, now)


def failing_feeds() -> list[Feed]:
    """Feeds whose last poll failed, or parked: most failures first."""
    return list(
        db.session.scalars(
            select(Feed)
            .where(or_(Feed.consecutive_failures > 0, Feed.parked_at.is_not(None)))
            .order_by(Feed.consecutive_failures.desc(), Feed.id)
        )
    )


def stale_feeds(now: datetime, stale_days: int) -> list[Feed]:
    """Enabled feeds with nothing new for over ``stale_days`` (the newest item, or with none
    the feed itself, is older): the rule of ``feeds.HealthRules.is_stale``, in SQL."""
    cutoff = now - timedelta(days=stale_days)
    return list(
        db.session.scalars(
            select(Feed)
            .where(
                Feed.disabled_at.is_(None),
                or_(
                    Feed.newest_item_at < cutoff,
                    Feed.newest_item_at.is_(None) & (Feed.created_at < cutoff),
                ),
            )
            .order_by(Feed.newest_item_at.nulls_first(), Feed.id)
        )
    )


@dataclass(frozen=True)
class ParkedJob:
    kind: str  # "article", "run" or "feed"
    id: int
    label: str
    parked_at: datetime
    error: str | None


@dataclass(frozen=True)
class ParkedJobs:
    """Work left for an operator after too many failures: counts, and the newest few."""

    articles: int
    runs: int
    feeds: int
    newest: list[ParkedJob]

    @property
    def total(self) -> int:
        return self.articles + self.runs + self.feeds


def parked_jobs(shown: int = PARKED_SHOWN) -> ParkedJobs:
    def count(column: Any) -> int:
        return db.session.scalar(select(func.count()).where(column.is_not(None))) or 0

    newest: list[ParkedJob] = []
    for row in db.session.execute(
        select(Article.id, Article.title, Article.alert_parked_at, Article.alert_last_error)
        .where(Article.alert_parked_at.is_not(None))
        .order_by(Article.alert_parked_at.desc())
        .limit(shown)
    ):
        newest.append(ParkedJob("article", row[0], row[1], row[2], row[3]))
    for row in db.session.execute(
        select(DigestRun.id, DigestRun.frequency, DigestRun.window_end, DigestRun.parked_at)
        .add_columns(DigestRun.last_error)
        .where(DigestRun.parked_at.is_not(None))
        .order_by(DigestRun.parked_at.desc())
        .limit(shown)
    ):
        label = f"{row[1]} run to {row[2]:%Y-%m-%d %H:%M} UTC"
        newest.append(ParkedJob("run", row[0], label, row[3], row[4]))
    for row in db.session.execute(
        select(Feed.id, Feed.title, Feed.url, Feed.parked_at, Feed.last_error)
        .where(Feed.parked_at.is_not(None))
        .order_by(Feed.parked_at.desc())
        .limit(shown)
    ):
        newest.append(ParkedJob("feed", row[0], row[1] or row[2], row[3], row[4]))
    newest.sort(key=lambda job: job.parked_at, reverse=True)
    return ParkedJobs(
        articles=count(Article.alert_parked_at),
        runs=count(DigestRun.parked_at),
        feeds=count(Feed.parked_at),
        newest=newest[:shown],
    )


def sending_paused() -> list[str]:
    """One line per pause of sending in force (none when mail is flowing)."""
    return [describe_pause(pause) for pause in pauses_in_force()]


@dataclass(frozen=True)
class Dashboard:
    now: datetime
    topics: list[TopicSubscribers]
    days: list[DayEmails]
    outbox: OutboxDepth
    failing_feeds: list[Feed]
    stale_feeds: list[Feed]
    parked: ParkedJobs
    pauses: list[str]


def dashboard(now: datetime, stale_days: int) -> Dashboard:
    return Dashboard(
        now=now,
        topics=subscribers_by_topic(),
        days=emails_per_day(now),
        outbox=outbox_depth(now),
        failing_feeds=failing_feeds(),
        stale_feeds=stale_feeds(now, stale_days),
        parked=parked_jobs(),
        pauses=sending_paused(),
    )


@dataclass(frozen=True)
class ArticleEmails:
    """The immediate alerts an article produced (every revision): by status, and by topic
    and status. An alert to a reader of two of the article's topics counts under each."""

    by_status: dict[str, int]
    by_topic: dict[int, dict[str, int]]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


def article_emails(article_id: int) -> ArticleEmails:
    by_status = dict(
        db.session.execute(
            select(OutboxEmail.status, func.count())
            .where(OutboxEmail.article_id == article_id)
            .group_by(OutboxEmail.status)
        ).all()
    )
    by_topic: dict[int, dict[str, int]] = {}
    if by_status:
        # An alert row's ``unsubscribe_topic_ids`` are the article's topics its reader
        # follows: expanded in SQL, in each database's way.
        if db.session.get_bind().dialect.name == "postgresql":
            sql = """
                SELECT CAST(t.value AS INTEGER), o.status, count(*)
                FROM outbox o
                CROSS JOIN LATERAL json_array_elements_text(o.unsubscribe_topic_ids) t(value)
                WHERE o.article_id = :article AND json_typeof(o.unsubscribe_topic_ids) = 'array'
                GROUP BY 1, 2
            """
        else:
            sql = """
                SELECT CAST(t.value AS INTEGER), o.status, count(*)
                FROM outbox o, json_each(o.unsubscribe_topic_ids) t
                WHERE o.article_id = :article AND json_type(o.unsubscribe_topic_ids) = 'array'
                GROUP BY 1, 2
            """
        for topic_id, status, number in db.session.execute(text(sql), {"article": article_id}):
            by_topic.setdefault(topic_id, {})[status] = number
    return ArticleEmails(by_status, by_topic)
