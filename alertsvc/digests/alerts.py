"""Immediate alerts: one email per subscriber per new article (or major update).

Each article revision is processed once, in its own transaction: its ledger rows
(``alert_deliveries``, unique per subscriber, article and revision), its outbox rows and its
``alerts_processed_at`` stamp commit together, so a crash or a second scheduler never
alerts anyone twice. Articles are claimed with ``FOR UPDATE SKIP LOCKED``.

A subscriber past the daily cap (their local day) gets no more alerts that day: the
article is recorded as carried over and goes into their next daily digest, and the alert
that reaches the cap says so.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import exists, func, or_, select

from alertsvc.database import bulk_insert, transaction
from alertsvc.delivery.outbox import mail_domain
from alertsvc.digests.rendering import article_view, render_alert, store_bodies
from alertsvc.digests.schedule import local_midnight
from alertsvc.extensions import db
from alertsvc.models import (
    AlertDelivery,
    Article,
    OutboxEmail,
    OutboxStatus,
    Subscriber,
    Subscription,
    Topic,
    article_topics,
    utcnow,
)


@dataclass
class AlertResult:
    articles: int = 0
    emails: int = 0
    carried_over: int = 0
    seconds: float = 0.0


def _claim_next_article() -> Article | None:
    return db.session.scalars(
        select(Article)
        .where(Article.alerts_processed_at.is_(None))
        .order_by(Article.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()


def _alerts_today(
    recipients: dict[int, tuple[str, str, set[int]]], now: datetime, floor: int
) -> dict[int, int]:
    """Alerts sent today (in each subscriber's local day), for those with at least ``floor``."""
    by_zone: dict[str, list[int]] = defaultdict(list)
    for subscriber_id, (_, zone, _) in recipients.items():
        by_zone[zone].append(subscriber_id)
    counts: dict[int, int] = {}
    for zone, ids in by_zone.items():
        midnight = local_midnight(now, ZoneInfo(zone))
        for start in range(0, len(ids), 10_000):
            rows = db.session.execute(
                select(AlertDelivery.subscriber_id, func.count())
                .where(
                    AlertDelivery.subscriber_id.in_(ids[start : start + 10_000]),
                    AlertDelivery.carried_over.is_(False),
                    AlertDelivery.created_at >= midnight,
                )
                .group_by(AlertDelivery.subscriber_id)
                .having(func.count() >= floor)
            )
            counts.update(dict(rows.all()))
    return counts


def alert_article(article: Article, now: datetime) -> tuple[int, int]:
    """Queue the alerts for one article revision. Returns (emails queued, carried over)."""
    config = current_app.config
    max_age = timedelta(days=config["ALERT_MAX_ARTICLE_AGE_DAYS"])
    if article.published_at < article.created_at - max_age:
        return 0, 0  # an old article imported late is stored, not alerted
    since = (
        article.major_update_at
        if article.revision and article.major_update_at
        else article.created_at
    )
    already = exists().where(
        AlertDelivery.subscriber_id == Subscriber.id,
        AlertDelivery.article_id == article.id,
        AlertDelivery.revision == article.revision,
    )
    rows = db.session.execute(
        select(Subscriber.id, Subscriber.email, Subscriber.timezone, Subscription.topic_id)
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .join(article_topics, article_topics.c.topic_id == Subscription.topic_id)
        .where(
            article_topics.c.article_id == article.id,
            Subscription.frequency == "immediately",
            Subscription.ended_at.is_(None),
            Subscription.delivered_until <= since,
            Subscriber.confirmed_at.is_not(None),
            or_(Subscriber.pause_ends_at.is_(None), Subscriber.pause_ends_at <= now),
            ~already,
        )
        .order_by(Subscriber.id)
    ).all()
    recipients: dict[int, tuple[str, str, set[int]]] = {}
    for subscriber_id, email, zone, topic_id in rows:
        recipients.setdefault(subscriber_id, (email, zone, set()))[2].add(topic_id)
    if not recipients:
        return 0, 0

    cap = config["ALERTS_DAILY_CAP"]
    sent_today = _alerts_today(recipients, now, cap - 1) if cap > 0 else {}
    topic_names = tuple(
        db.session.scalars(
            select(Topic.name)
            .join(article_topics, article_topics.c.topic_id == Topic.id)
            .where(article_topics.c.article_id == article.id)
            .order_by(Topic.name)
        )
    )
    view = article_view(article, ZoneInfo(config["TIMEZONE"]))
    bodies: dict[bool, tuple[int, str]] = {}

    def body(cap_reached: bool) -> tuple[int, str]:
        if cap_reached not in bodies:
            rendered = render_alert(view, article.revision, topic_names, cap_reached, cap)
            body_id = store_bodies(db.session.connection(), [rendered])[rendered.content_key]
            bodies[cap_reached] = (body_id, rendered.subject)
        return bodies[cap_reached]

    domain = mail_domain()
    queued_at = utcnow()
    ledger, outbox = [], []
    carried = 0
    for subscriber_id, (email, _, topic_ids) in recipients.items():
        count = sent_today.get(subscriber_id, 0)
        over_cap = cap > 0 and count >= cap
        ledger.append((subscriber_id, article.id, article.revision, now, over_cap))
        if over_cap:
            carried += 1
            continue
        body_id, subject = body(cap > 0 and count == cap - 1)
        outbox.append(
            (
                queued_at,
                "alert",
                email,
                subject,
                {},
                subscriber_id,
                sorted(topic_ids),
                body_id,
                make_msgid(domain=domain),
                OutboxStatus.QUEUED.value,
                0,
                queued_at,
            )
        )
    bulk_insert(
        AlertDelivery.__table__,
        ("subscriber_id", "article_id", "revision", "created_at", "carried_over"),
        ledger,
    )
    bulk_insert(
        OutboxEmail.__table__,
        (
            "created_at",
            "template",
            "to_address",
            "subject",
            "context",
            "subscriber_id",
            "unsubscribe_topic_ids",
            "body_id",
            "message_id",
            "status",
            "attempts",
            "next_attempt_at",
        ),
        outbox,
    )
    return len(outbox), carried


def run_immediate_alerts(now: datetime | None = None) -> AlertResult:
    """Alert every article revision not yet alerted, one transaction per article."""
    started = time.perf_counter()
    result = AlertResult()
    while True:
        with transaction():
            article = _claim_next_article()
            if article is None:
                break
            emails, carried = alert_article(article, now or utcnow())
            article.alerts_processed_at = utcnow()
        result.articles += 1
        result.emails += emails
        result.carried_over += carried
    result.seconds = time.perf_counter() - started
    return result
