"""Immediate alerts: one email per subscriber per new article (or major update).

Each article revision is processed once, in its own transaction, owned by the job
(``digests.jobs``): its ledger rows (``alert_deliveries``, unique per subscriber, article
and revision), its outbox rows and its ``alerts_processed_at`` stamp commit together, so a
crash or a second scheduler never alerts anyone twice. Articles are claimed with
``FOR UPDATE SKIP LOCKED``. An article that fails is retried, then parked, alone
(``alertsvc.retries``).

A subscriber past the daily cap (their local day) gets no more alerts that day: the
article is recorded as carried over and goes into their next daily digest, and the alert
that reaches the cap says so.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import CursorResult, and_, func, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from alertsvc.database import WorkingTables, as_json, execute_sql
from alertsvc.delivery.wakeup import OUTBOX_CHANNEL, notify
from alertsvc.digests.rendering import article_view, render_alert, store_bodies
from alertsvc.digests.schedule import local_midnight
from alertsvc.digests.timezones import subscriber_timezones
from alertsvc.extensions import db
from alertsvc.metrics import count_queued
from alertsvc.models import Article, Frequency, OutboxStatus, Topic, article_topics, utcnow
from alertsvc.retries import Failure, RetryPolicy
from alertsvc.text import plural


@dataclass
class AlertResult:
    articles: int = 0
    emails: int = 0
    carried_over: int = 0
    failed: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        """What a pass did, for ``alerts run`` and the scheduler's log."""
        failed = f", {self.failed} failed" if self.failed else ""
        return (
            f"{plural(self.articles, 'article')}, {plural(self.emails, 'email')} queued, "
            f"{self.carried_over} held for the daily digest (cap reached){failed},"
            f" {self.seconds:.2f} s"
        )


class AlertError(Exception):
    """An article whose alerts cannot be retried. The message is for an operator."""


def _waiting(now: datetime) -> ColumnElement[bool]:
    """Articles whose current revision is still to be alerted and whose turn it is: not
    parked, and not waiting for the next attempt after a failure."""
    return and_(
        Article.alerts_processed_at.is_(None),
        Article.alert_parked_at.is_(None),
        or_(Article.alert_next_attempt_at.is_(None), Article.alert_next_attempt_at <= now),
    )


def claim_next_article(now: datetime, skip: Collection[int] = ()) -> Article | None:
    """Lock the oldest article waiting for its alerts (``FOR UPDATE SKIP LOCKED``: another
    scheduler takes the next one), leaving out ``skip`` (those failed in this run)."""
    query = select(Article).where(_waiting(now))
    if skip:
        query = query.where(Article.id.not_in(list(skip)))
    return db.session.scalars(
        query.order_by(Article.id).limit(1).with_for_update(skip_locked=True)
    ).first()


def claim_article(article_id: int) -> Article | None:
    """Lock one article for its alerts (a retry by hand), or None if another holds it."""
    return db.session.scalars(
        select(Article).where(Article.id == article_id).with_for_update(skip_locked=True)
    ).first()


def mark_article_alerted(article: Article) -> None:
    """This revision is done: no alert for it is queued again, and its failures are over."""
    article.alerts_processed_at = utcnow()
    article.alert_attempts = 0
    article.alert_next_attempt_at = None
    article.alert_last_error = None
    article.alert_parked_at = None


def record_alert_failure(
    article_id: int, error: str, *, now: datetime, policy: RetryPolicy
) -> Failure | None:
    """Count a failed attempt at the article's alerts (nothing of the attempt was kept)."""
    article = db.session.get(Article, article_id)
    if article is None:
        return None
    failure = policy.failed(article.alert_attempts or 0, error, now)
    article.alert_attempts = failure.attempts
    article.alert_last_error = failure.error
    article.alert_next_attempt_at = None if failure.parked_at else failure.next_attempt_at
    article.alert_parked_at = failure.parked_at
    return failure


def release_article_for_retry(article_id: int) -> Article:
    """Un-park an article's alerts (or cut their wait short) so they can be tried now."""
    article = db.session.get(Article, article_id)
    if article is None:
        raise AlertError(f"No article {article_id}.")
    if article.alerts_processed_at is not None:
        raise AlertError(f"Article {article_id} has been alerted: nothing to retry.")
    article.alert_attempts = 0
    article.alert_next_attempt_at = None
    article.alert_parked_at = None
    return article


@dataclass
class AlertStatus:
    waiting: int
    failing: list[Article]


def alert_status(now: datetime) -> AlertStatus:
    """How many articles wait for their alerts now, and those that failed (parked or not)."""
    waiting = db.session.scalar(select(func.count()).select_from(Article).where(_waiting(now)))
    failing = db.session.scalars(
        select(Article)
        .where(Article.alerts_processed_at.is_(None), Article.alert_attempts > 0)
        .order_by(Article.id)
    )
    return AlertStatus(waiting or 0, list(failing))


# Working tables for one article, private to its transaction's connection.
_WORKING_TABLES = WorkingTables(
    {
        "alert_midnights": "timezone VARCHAR(64) PRIMARY KEY,"
        " midnight TIMESTAMP WITH TIME ZONE NOT NULL",
        "alert_recipients": "subscriber_id INTEGER PRIMARY KEY, topic_ids TEXT NOT NULL,"
        " sent_today INTEGER NOT NULL",
    }
)


def alert_article(
    article: Article, now: datetime, timezones: Sequence[str] | None = None
) -> tuple[int, int]:
    """Queue the alerts for one article revision. Returns (emails queued, carried over).

    Set-based, in the caller's transaction: the database finds the recipients (with how
    many alerts each has had today, in their own day), then writes their ledger rows and
    outbox rows with ``INSERT … SELECT``; Python renders the one or two shared bodies.
    ``timezones`` are the subscribers' (``subscriber_timezones()``, looked up if not given).
    """
    config = current_app.config
    max_age = timedelta(days=config["ALERT_MAX_ARTICLE_AGE_DAYS"])
    if article.published_at < article.created_at - max_age:
        return 0, 0  # an old article imported late is stored, not alerted
    since = (
        article.major_update_at
        if article.revision and article.major_update_at
        else article.created_at
    )
    cap = int(config["ALERTS_DAILY_CAP"])
    connection = db.session.connection()

    def execute(sql: str, **params: object) -> CursorResult[Any]:
        return execute_sql(
            connection,
            sql,
            article=article.id,
            revision=article.revision,
            now=now,
            cap=cap,
            true=True,
            false=False,
            **params,
        )

    _WORKING_TABLES.create(connection)
    # On failure the caller rolls back, and the tables go with the transaction that made them.
    if cap > 0 and timezones is None:
        timezones = subscriber_timezones()
    result = _queue_alerts(article, execute, connection, since, cap, now, timezones or ())
    _WORKING_TABLES.drop(connection)
    return result


def _queue_alerts(
    article: Article,
    execute: Callable[..., CursorResult[Any]],
    connection: Connection,
    since: datetime,
    cap: int,
    now: datetime,
    timezones: Sequence[str],
) -> tuple[int, int]:
    postgres = connection.dialect.name == "postgresql"
    if cap > 0:
        for zone in timezones:
            execute(
                "INSERT INTO alert_midnights (timezone, midnight) VALUES (:zone, :midnight)",
                zone=zone,
                midnight=local_midnight(now, ZoneInfo(zone)),
            )
        sent_today = """(SELECT count(*) FROM alert_deliveries ad
                         JOIN alert_midnights m ON m.timezone = s.timezone
                         WHERE ad.subscriber_id = s.id AND ad.carried_over = :false
                           AND ad.created_at >= m.midnight)"""
    else:
        sent_today = "0"
    topic_ids = (
        "string_agg(CAST(followed.topic_id AS VARCHAR(12)), ',' ORDER BY followed.topic_id)"
        if postgres
        else "group_concat(followed.topic_id, ',')"  # in the subquery's order
    )
    execute(
        f"""
        INSERT INTO alert_recipients (subscriber_id, topic_ids, sent_today)
        SELECT s.id, '[' || {topic_ids} || ']', {sent_today}
        FROM subscribers s
        JOIN (SELECT sub.subscriber_id, sub.topic_id FROM subscriptions sub
              JOIN article_topics t ON t.topic_id = sub.topic_id AND t.article_id = :article
              WHERE sub.frequency = :immediately AND sub.ended_at IS NULL
                AND sub.delivered_until <= :since
              ORDER BY sub.subscriber_id, sub.topic_id) followed
             ON followed.subscriber_id = s.id
        WHERE s.confirmed_at IS NOT NULL
          AND (s.pause_ends_at IS NULL OR s.pause_ends_at <= :now)
          AND NOT EXISTS (SELECT 1 FROM alert_deliveries ad
                          WHERE ad.subscriber_id = s.id AND ad.article_id = :article
                            AND ad.revision = :revision)
        GROUP BY s.id, s.timezone
        """,
        since=since,
        immediately=Frequency.IMMEDIATELY.value,
    )
    over_cap = ":cap > 0 AND sent_today >= :cap"
    reaches_cap = ":cap > 0 AND sent_today = :cap - 1"
    recipients, carried, reaching = execute(
        f"""
        SELECT count(*), coalesce(sum(CASE WHEN {over_cap} THEN 1 ELSE 0 END), 0),
               coalesce(sum(CASE WHEN {reaches_cap} THEN 1 ELSE 0 END), 0)
        FROM alert_recipients
        """
    ).one()
    if not recipients:
        return 0, 0
    bodies = _store_alert_bodies(article, cap, usual=recipients > carried, last=reaching > 0)
    execute(
        f"""
        INSERT INTO alert_deliveries (subscriber_id, article_id, revision, created_at,
                                      carried_over)
        SELECT subscriber_id, :article, :revision, :now,
               CASE WHEN {over_cap} THEN :true ELSE :false END
        FROM alert_recipients
        """
    )
    emails = execute(
        f"""
        INSERT INTO outbox (created_at, template, context, subscriber_id,
                            unsubscribe_topic_ids, body_id, article_id, status, attempts,
                            next_attempt_at)
        SELECT :queued, 'alert', {as_json(connection, "'{}'")}, subscriber_id,
               {as_json(connection, "topic_ids")},
               CASE WHEN {reaches_cap} THEN CAST(:last_body AS INTEGER)
                    ELSE CAST(:body AS INTEGER) END, :article, :queued_status, 0, :queued
        FROM alert_recipients
        WHERE NOT ({over_cap})
        """,
        queued=utcnow(),
        queued_status=OutboxStatus.QUEUED.value,
        body=bodies.get(False),
        last_body=bodies.get(True),
    ).rowcount
    if emails:
        notify(connection, OUTBOX_CHANNEL)
        count_queued(connection, "alert", emails)
    return emails, carried


def _store_alert_bodies(article: Article, cap: int, *, usual: bool, last: bool) -> dict[bool, int]:
    """The bodies this article's alerts need: usual, and the one saying the cap is reached."""
    topic_names = tuple(
        db.session.scalars(
            select(Topic.name)
            .join(article_topics, article_topics.c.topic_id == Topic.id)
            .where(article_topics.c.article_id == article.id)
            .order_by(Topic.name)
        )
    )
    view = article_view(article, ZoneInfo(current_app.config["TIMEZONE"]))
    wanted = [cap_reached for cap_reached, needed in ((False, usual), (True, last)) if needed]
    rendered = {
        cap_reached: render_alert(view, article.revision, topic_names, cap_reached, cap)
        for cap_reached in wanted
    }
    ids = store_bodies(db.session.connection(), list(rendered.values()))
    return {cap_reached: ids[r.content_key] for cap_reached, r in rendered.items()}
