"""Subscriber figures for operators: confirmed and pending, by topic and frequency."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Integer, cast, distinct, func, select, true

from alertsvc.extensions import db
from alertsvc.models import SignupRequest, Subscription, Topic


@dataclass(frozen=True)
class SubscriberCount:
    topic: str
    frequency: str
    confirmed: int = 0
    pending: int = 0


def subscriber_counts() -> list[SubscriberCount]:
    """By topic slug and frequency: subscribers with a live subscription (confirmed), and
    subscribers whose signup asking for it is not confirmed yet (pending).

    Two grouped queries; a pending signup's topics are a JSON list, expanded in SQL.
    """
    confirmed = {
        (slug, frequency): number
        for slug, frequency, number in db.session.execute(
            select(Topic.slug, Subscription.frequency, func.count(Subscription.subscriber_id))
            .join(Topic, Topic.id == Subscription.topic_id)
            .where(Subscription.ended_at.is_(None))
            .group_by(Topic.slug, Subscription.frequency)
        )
    }
    expand = (
        func.json_array_elements_text
        if db.session.get_bind().dialect.name == "postgresql"
        else func.json_each
    )
    topic_ids = expand(SignupRequest.topic_ids).table_valued("value")
    pending = {
        (slug, frequency): number
        for slug, frequency, number in db.session.execute(
            select(
                Topic.slug,
                SignupRequest.frequency,
                func.count(distinct(SignupRequest.subscriber_id)),
            )
            .select_from(SignupRequest)
            .join(topic_ids, true())
            .join(Topic, Topic.id == cast(topic_ids.c.value, Integer))
            .where(SignupRequest.confirmed_at.is_(None))
            .group_by(Topic.slug, SignupRequest.frequency)
        )
    }
    return [
        SubscriberCount(slug, frequency, confirmed.get(key, 0), pending.get(key, 0))
        for key in sorted(confirmed.keys() | pending.keys())
        for slug, frequency in [key]
    ]
