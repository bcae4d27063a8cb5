"""Plain builder functions for test data: the one module the whole suite builds rows with.

Each opens its own app context and commits, and returns plain values (ids), so tests can
call them and then drive the app through the test client with no context held open: a
request must never share the test's session or ``g``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flask import Flask
from sqlalchemy import func, insert, select

from alertsvc.admin.operators import create_operator as create_operator_account
from alertsvc.api.tokens import create_api_token
from alertsvc.database import transaction
from alertsvc.delivery.outbox import queue_email
from alertsvc.extensions import db
from alertsvc.models import Article, Feed, Subscriber, Subscription, Topic, article_topics, utcnow
from alertsvc.topics.services import seed_demo_topics


def create_topic(app: Flask, slug: str = "data", name: str = "Data", description: str = "") -> int:
    with app.app_context():
        topic = Topic(slug=slug, name=name, description=description)
        db.session.add(topic)
        db.session.commit()
        return topic.id


def seed_topics(app: Flask) -> dict[str, int]:
    """The demo topics; returns slug -> id."""
    with app.app_context():
        seed_demo_topics()
        db.session.commit()
        return dict(db.session.execute(select(Topic.slug, Topic.id)).all())


def create_subscriber(
    app: Flask,
    email: str = "reader@example.com",
    topics: dict[int, str] | None = None,
    *,
    confirmed: bool = True,
    **fields: Any,
) -> int:
    """A subscriber following ``topics`` (topic id -> frequency); returns its id."""
    with app.app_context():
        subscriber = Subscriber(email=email, confirmed_at=utcnow() if confirmed else None, **fields)
        db.session.add(subscriber)
        db.session.flush()
        for topic_id, frequency in (topics or {}).items():
            db.session.add(
                Subscription(subscriber_id=subscriber.id, topic_id=topic_id, frequency=frequency)
            )
        db.session.commit()
        return subscriber.id


def count(app: Flask, model: type, *where: Any) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def rows(app: Flask, statement: Any) -> list[Any]:
    """Run a select in a fresh context and return detached rows (plain tuples for columns)."""
    with app.app_context():
        result = db.session.execute(statement)
        values = [row[0] if len(row) == 1 else tuple(row) for row in result]
        db.session.expunge_all()
        return values


def live_subscriptions(app: Flask, subscriber_id: int) -> dict[int, str]:
    """topic id -> frequency of the subscriber's live subscriptions."""
    with app.app_context():
        return dict(
            db.session.execute(
                select(Subscription.topic_id, Subscription.frequency).where(
                    Subscription.subscriber_id == subscriber_id, Subscription.ended_at.is_(None)
                )
            ).all()
        )


def stored_state(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to assert that something changed nothing stored."""
    with app.app_context():
        return {
            table.name: [
                tuple(row)
                for row in db.session.execute(table.select().order_by(*table.primary_key.columns))
            ]
            for table in db.metadata.sorted_tables
        }


def subscription_history(app: Flask, subscriber_id: int) -> list[tuple[int, str, str]]:
    """(topic id, frequency, "live" or the ended reason) of each subscription row, oldest first."""

    def state(ended_at: Any, reason: str | None) -> str:
        if (ended_at is None) != (reason is None):
            return f"inconsistent: ended_at={ended_at} ended_reason={reason}"
        return "live" if ended_at is None else str(reason)

    with app.app_context():
        return [
            (topic_id, frequency, state(ended_at, reason))
            for topic_id, frequency, ended_at, reason in db.session.execute(
                select(
                    Subscription.topic_id,
                    Subscription.frequency,
                    Subscription.ended_at,
                    Subscription.ended_reason,
                )
                .where(Subscription.subscriber_id == subscriber_id)
                .order_by(Subscription.id)
            )
        ]


def subscriber_id_for(app: Flask, email: str) -> int:
    with app.app_context():
        return db.session.scalars(select(Subscriber.id).where(Subscriber.email == email)).one()


def create_feed(app: Flask, url: str, topic_slugs: Sequence[str] = (), **fields) -> int:
    with app.app_context():
        topics = list(db.session.scalars(select(Topic).where(Topic.slug.in_(topic_slugs))))
        feed = Feed(url=url, topics=topics, consecutive_failures=0, **fields)
        db.session.add(feed)
        db.session.commit()
        return feed.id


OPERATOR_PASSWORD = "a long test password"


def create_operator(
    app: Flask,
    email: str = "ops@publisher.example",
    role: str = "admin",
    password: str = OPERATOR_PASSWORD,
) -> int:
    """An operator who signs in at /admin with ``password``; returns their id."""
    with app.app_context():
        operator = create_operator_account(email, password, role)
        db.session.commit()
        return operator.id


def create_token(
    app: Flask, name: str = "newsroom", scopes: Sequence[str] = ("articles:write",)
) -> str:
    with app.app_context():
        _, token = create_api_token(name, scopes)
        db.session.commit()
        return token


def create_article(
    app: Flask,
    title: str,
    topic_ids: list[int],
    arrived: datetime,
    *,
    url: str | None = None,
    summary: str = "",
    published: datetime | None = None,
    alerted: bool = True,
) -> int:
    """An article that arrived at ``arrived``. ``alerted`` marks it done for immediate alerts."""
    with app.app_context():
        article = Article(
            guid=url or f"https://news.example/{title.replace(' ', '-').lower()}-{arrived:%s}",
            url=url or f"https://news.example/{title.replace(' ', '-').lower()}",
            title=title,
            summary=summary,
            published_at=published or arrived,
            created_at=arrived,
            source="cli",
            alerts_processed_at=arrived if alerted else None,
        )
        db.session.add(article)
        db.session.flush()
        if topic_ids:
            db.session.execute(
                insert(article_topics),
                [{"article_id": article.id, "topic_id": t} for t in topic_ids],
            )
        db.session.commit()
        return article.id


def queue_manage_link(app: Flask, email: str = "reader@example.com", **row_fields: Any) -> int:
    """A subscriber and a queued "manage your email alerts" email to them; returns the row id.

    ``row_fields`` set outbox columns directly (``template``, ``status``, ``next_attempt_at`` …)
    to stage a row as a worker would have left it.
    """
    subscriber_id = create_subscriber(app, email)
    with app.app_context(), transaction():
        row = queue_email(
            template="manage_link",
            to_address=email,
            subject="Manage your email alerts",
            subscriber_id=subscriber_id,
        )
        for name, value in row_fields.items():
            setattr(row, name, value)
        db.session.flush()
        return row.id


def queue_manage_links(app: Flask, count: int, domain: str = "example.com") -> list[int]:
    """``count`` subscribers, each with a queued email, in one transaction; returns row ids."""
    with app.app_context(), transaction():
        queued = []
        for number in range(count):
            email = f"reader{number}@{domain}"
            subscriber = Subscriber(email=email, confirmed_at=utcnow())
            db.session.add(subscriber)
            db.session.flush()
            queued.append(
                queue_email(
                    template="manage_link",
                    to_address=email,
                    subject="Manage your email alerts",
                    subscriber_id=subscriber.id,
                )
            )
        db.session.flush()
        return [row.id for row in queued]
