"""Plain builder functions for test data.

Each opens its own app context and commits, and returns plain values (ids), so tests can
call them and then drive the app through the test client with no context held open: a
request must never share the test's session or ``g``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import func, select

from alertsvc.extensions import db
from alertsvc.models import Subscriber, Subscription, Topic, utcnow
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
