"""Subscriber figures for operators, the one home of each: by topic and frequency,
confirmed and pending. The dashboard, the topic pages and the JSON API's ``stats`` all
read them here.

- **Confirmed**: live subscriptions of confirmed subscribers not erased, the ones digests
  and alerts go to. A subscriber has at most one live subscription to a topic, so this is
  also a number of subscribers.
- **Pending**: subscribers (not erased) with a signup asking for the topic at that
  frequency whose confirm link has not been clicked yet; one who asked twice counts once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, cast, distinct, func, select, true

from alertsvc.extensions import db
from alertsvc.models import SignupRequest, Subscriber, Subscription, Topic

Counts = dict[int, dict[str, int]]
"""topic id -> frequency -> number (frequencies with none left out)."""


def _by_topic_and_frequency(rows: Iterable[Any]) -> Counts:
    counts: Counts = {}
    for topic_id, frequency, number in rows:
        counts.setdefault(int(topic_id), {})[frequency] = number
    return counts


def confirmed_subscription_counts() -> Counts:
    return _by_topic_and_frequency(
        db.session.execute(
            select(Subscription.topic_id, Subscription.frequency, func.count())
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .where(
                Subscription.ended_at.is_(None),
                Subscriber.confirmed_at.is_not(None),
                Subscriber.erased_at.is_(None),
            )
            .group_by(Subscription.topic_id, Subscription.frequency)
        )
    )


def pending_signup_counts() -> Counts:
    """A signup's topics are a JSON list, expanded in SQL (each database its own way)."""
    expand = (
        func.json_array_elements_text
        if db.session.get_bind().dialect.name == "postgresql"
        else func.json_each
    )
    topic_ids = expand(SignupRequest.topic_ids).table_valued("value")
    topic_id = cast(topic_ids.c.value, Integer)
    return _by_topic_and_frequency(
        db.session.execute(
            select(topic_id, SignupRequest.frequency, func.count(distinct(Subscriber.id)))
            .select_from(SignupRequest)
            .join(Subscriber, Subscriber.id == SignupRequest.subscriber_id)
            .join(topic_ids, true())
            .where(SignupRequest.confirmed_at.is_(None), Subscriber.erased_at.is_(None))
            .group_by(topic_id, SignupRequest.frequency)
        )
    )


@dataclass(frozen=True)
class SubscriberCount:
    topic: str
    frequency: str
    confirmed: int = 0
    pending: int = 0


def subscriber_counts() -> list[SubscriberCount]:
    """By topic slug and frequency, the pairs with any confirmed or pending, in order."""
    confirmed = confirmed_subscription_counts()
    pending = pending_signup_counts()
    slugs = dict(db.session.execute(select(Topic.id, Topic.slug)).all())
    counts = [
        SubscriberCount(
            slugs[topic_id],
            frequency,
            confirmed.get(topic_id, {}).get(frequency, 0),
            pending.get(topic_id, {}).get(frequency, 0),
        )
        for topic_id in confirmed.keys() | pending.keys()
        if topic_id in slugs
        for frequency in confirmed.get(topic_id, {}).keys() | pending.get(topic_id, {}).keys()
    ]
    return sorted(counts, key=lambda count: (count.topic, count.frequency))
