"""Data for the read routes of the API: a little of everything, as a running service has."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from alertsvc.api.tokens import SCOPES
from alertsvc.digests.jobs import plan_run
from alertsvc.digests.schedule import floor_hour
from alertsvc.models import utcnow
from tests.digests.helpers import start_subscriptions_at
from tests.factories import (
    create_article,
    create_feed,
    create_subscriber,
    create_token,
    seed_topics,
)


def seed_service(app: Flask) -> dict[str, int]:
    """Topics, a feed, articles, two subscribers (one daily at this hour), and the daily run
    that has just ended, planned. Returns ids by name."""
    topics = seed_topics(app)
    now = utcnow()
    window_end = floor_hour(now)
    feed_id = create_feed(app, "https://news.example.org/feed.xml", ["data"])
    first = create_article(app, "Open data week", [topics["data"]], window_end - timedelta(hours=5))
    second = create_article(
        app, "Cloud first, again", [topics["digital-government"]], window_end - timedelta(hours=3)
    )
    subscriber_id = create_subscriber(
        app,
        "reader@example.com",
        {topics["data"]: "daily", topics["digital-government"]: "weekly"},
        timezone="UTC",
        daily_hour=window_end.hour,
    )
    start_subscriptions_at(app, subscriber_id, now - timedelta(days=2))
    create_subscriber(app, "pending@example.com", confirmed=False)
    with app.app_context():
        result = plan_run("daily", window_end, trigger="cli")
    return {
        "feed": feed_id,
        "article": first,
        "other_article": second,
        "subscriber": subscriber_id,
        "run": result.run_id or 0,
    }


def full_token(app: Flask, name: str = "everything") -> str:
    return create_token(app, name, SCOPES)
