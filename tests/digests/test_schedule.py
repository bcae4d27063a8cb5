"""Daylight saving: every subscriber gets exactly one daily digest per local day."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from alertsvc.digests.schedule import due_slots
from alertsvc.models import DigestDelivery, OutboxEmail, Subscriber
from tests.digests.helpers import RECIPIENT, at, digest, start_subscriptions_at
from tests.factories import create_article, create_subscriber, rows, seed_topics

LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize(
    ("first_hour", "label"),
    [
        ("2027-03-26T23:00", "spring forward (28 March 2027)"),
        ("2026-10-23T22:00", "fall back (25 October 2026)"),
    ],
)
def test_dst_days_neither_skip_nor_double(app, first_hour, label):
    """Three local days around the change, one run per UTC hour, subscribers at 01:00 and 07:00."""
    topics = seed_topics(app)
    start = at(first_hour)
    for hour in (1, 7):
        subscriber = create_subscriber(
            app, f"h{hour}@example.com", {topics["data"]: "daily"}, daily_hour=hour
        )
        start_subscriptions_at(app, subscriber, start)
    sent_at: dict[str, list] = {f"h{hour}@example.com": [] for hour in (1, 7)}
    articles = 0
    moment = start
    for step in range(3 * 24):
        moment += timedelta(hours=1)
        if step % 3 == 0:
            create_article(app, f"News {step}", [topics["data"]], moment - timedelta(minutes=30))
            articles += 1
        before = set(rows(app, select(OutboxEmail.id)))
        digest(app, "daily", moment)
        for row_id, address in rows(app, select(OutboxEmail.id, RECIPIENT)):
            if row_id not in before:
                sent_at[address].append(moment)
    for hour in (1, 7):
        moments = sent_at[f"h{hour}@example.com"]
        local_days = Counter(m.astimezone(LONDON).date() for m in moments)
        assert sorted(local_days.values()) == [1, 1, 1], (label, hour, local_days)
        local_hours = {m.astimezone(LONDON).hour for m in moments}
        assert local_hours <= {hour, hour + 1}, (label, hour, local_hours)
    # Windows chain: every article before a subscriber's last digest went out exactly once.
    for hour in (1, 7):
        counts = rows(
            app,
            select(DigestDelivery.article_count)
            .join(Subscriber, Subscriber.id == DigestDelivery.subscriber_id)
            .where(Subscriber.email == f"h{hour}@example.com"),
        )
        last = max(sent_at[f"h{hour}@example.com"])
        expected = sum(
            1
            for step in range(0, 3 * 24, 3)
            if start + timedelta(hours=step + 1) - timedelta(minutes=30) < last
        )
        assert sum(counts) == expected, (label, hour)
    assert articles == 24


def test_slots_on_the_spring_forward_and_fall_back_days():
    zones = ["Europe/London"]
    assert due_slots("daily", at("2027-03-28T01:00"), zones) == [
        ("Europe/London", 1, -1),
        ("Europe/London", 2, -1),
    ]
    assert due_slots("daily", at("2027-03-28T02:00"), zones) == [("Europe/London", 3, -1)]
    assert due_slots("daily", at("2026-10-25T00:00"), zones) == [("Europe/London", 1, -1)]
    assert due_slots("daily", at("2026-10-25T01:00"), zones) == []
    assert due_slots("daily", at("2026-10-25T02:00"), zones) == [("Europe/London", 2, -1)]


def test_half_hour_zones_are_served_at_the_next_hour():
    assert ("Asia/Kolkata", 7, -1) in due_slots("daily", at("2026-11-25T02:00"), ["Asia/Kolkata"])
    assert due_slots("weekly", at("2026-11-25T07:00"), ["Europe/London"]) == [
        ("Europe/London", 7, 2)
    ]
