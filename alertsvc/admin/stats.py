"""The dashboard's composition, and figures only operators' pages show (parked jobs,
failing and stale feeds, an article's alerts). Subscriber figures come from
``subscriptions.stats`` and outbox figures from ``delivery.stats``, the one home of each
(where their rules are written down), which the JSON API's ``stats`` reads too. Each
figure is one set-based query (GROUP BY), never a query per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, text

from alertsvc.delivery.pauses import describe_pause
from alertsvc.delivery.stats import DayCount, OutboxDepth, emails_per_day, outbox_depth
from alertsvc.extensions import db
from alertsvc.models import (
    Article,
    DigestRun,
    Feed,
    Frequency,
    OutboxEmail,
    SendingPause,
    Topic,
)
from alertsvc.retries import parked_counts
from alertsvc.subscriptions.stats import confirmed_subscription_counts, pending_signup_counts

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
    return ParkedJobs(**parked_counts(), newest=newest[:shown])


@dataclass(frozen=True)
class Dashboard:
    now: datetime
    topics: list[TopicSubscribers]
    days: list[DayCount]
    outbox: OutboxDepth
    failing_feeds: list[Feed]
    stale_feeds: list[Feed]
    parked: ParkedJobs
    pauses: list[str]


def dashboard(now: datetime, stale_days: int, pauses: list[SendingPause]) -> Dashboard:
    """The dashboard's figures; ``pauses`` (in force) as the caller already read them."""
    return Dashboard(
        now=now,
        topics=subscribers_by_topic(),
        days=emails_per_day(now.date()),
        outbox=outbox_depth(now),
        failing_feeds=failing_feeds(),
        stale_feeds=stale_feeds(now, stale_days),
        parked=parked_jobs(),
        pauses=[describe_pause(pause) for pause in pauses],
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
