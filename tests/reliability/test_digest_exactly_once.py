"""Exactly-once delivery under random sequences of everything subscribers and operators do.

A hypothesis state machine subscribes, changes frequency, hour and timezone, pauses,
resumes, unsubscribes, publishes articles, lets time pass (running every hourly digest run
and the immediate alerts, as the scheduler does) and crashes a run half way (resumed later
by the sweeper). At the end it lets eight days pass and checks, per subscriber and article:

* no article is ever sent twice by the same channel (the daily digest, the weekly digest,
  or immediate alerts). The channels are separate: an article in two topics that a reader
  follows at two frequencies reaches them once at each, as each digest covers every topic
  followed at its frequency (README, "Digests and alerts"), just as an alert and a digest
  may both carry it;
* an article is sent by digest when the subscriber followed one of its topics at a digest
  frequency from before it arrived until the end, unpaused throughout;
* an article is in a daily or weekly digest only if the subscriber followed one of its
  topics at that frequency (or had it held back from alerts, for the daily);
* an article is alerted when they followed one of its topics immediately when it arrived;
* nothing is sent about topics they did not follow.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import select

from alertsvc.database import transaction
from alertsvc.digests import jobs, planning
from alertsvc.digests.jobs import run_immediate_alerts
from alertsvc.extensions import db
from alertsvc.models import EmailBody, EndedReason, Frequency, OutboxEmail, Subscriber
from alertsvc.models.types import set_clock
from alertsvc.subscriptions import services
from tests.conftest import empty_tables
from tests.factories import create_article, create_subscriber, seed_topics

SUBSCRIBERS = 3
TOPICS = ("data", "cyber-security", "local-digital")
START = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)
_ARTICLE_URL = re.compile(r"https://news\.example/article-(\d+)")


class DigestMachine(RuleBasedStateMachine):
    app = None  # set by the test
    clock = START  # what alertsvc's utcnow() answers while the machine runs

    @property
    def now(self) -> datetime:
        return DigestMachine.clock

    @now.setter
    def now(self, moment: datetime) -> None:
        DigestMachine.clock = moment

    def __init__(self) -> None:
        super().__init__()
        empty_tables(self.app)
        self.now = START
        self.topic_ids = seed_topics(self.app)
        self.subscribers = [
            create_subscriber(self.app, f"reader{n}@example.com") for n in range(SUBSCRIBERS)
        ]
        # (subscriber, topic) -> list of [start, end, frequency]
        self.follows: dict[tuple[int, str], list[list]] = defaultdict(list)
        self.pauses: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
        self.paused_until: dict[int, datetime | None] = {}
        self.articles: dict[int, tuple[datetime, tuple[str, ...]]] = {}
        self.crashed = False

    # -- helpers ----------------------------------------------------------------------------

    def _subscriber(self, index: int) -> Subscriber:
        return db.session.get(Subscriber, self.subscribers[index])

    def _current(self, index: int, topic: str):
        intervals = self.follows[(index, topic)]
        return intervals[-1] if intervals and intervals[-1][1] is None else None

    def _run_hours(self, until: datetime) -> None:
        """Run what the scheduler runs, hour by hour, up to ``until``."""
        hour = self.now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        while hour <= until:
            self.now = hour
            with self.app.app_context():
                for frequency in ("daily", "weekly"):
                    jobs.plan_run(frequency, hour)
                run_immediate_alerts(hour)
            hour += timedelta(hours=1)
        self.now = until
        with self.app.app_context():
            jobs.sweep_digest_runs(until)

    # -- rules ------------------------------------------------------------------------------

    @rule(
        index=st.integers(0, SUBSCRIBERS - 1),
        topic=st.sampled_from(TOPICS),
        frequency=st.sampled_from(list(Frequency)),
    )
    def subscribe(self, index, topic, frequency):
        with self.app.app_context(), transaction():
            services.subscribe(self._subscriber(index), self.topic_ids[topic], frequency)
        current = self._current(index, topic)
        if current is not None and current[2] == frequency:
            return
        if current is not None:
            current[1] = self.now
        self.follows[(index, topic)].append([self.now, None, frequency])

    @rule(index=st.integers(0, SUBSCRIBERS - 1), topic=st.sampled_from(TOPICS))
    def unsubscribe(self, index, topic):
        with self.app.app_context(), transaction():
            services.end_subscriptions(
                self.subscribers[index], [self.topic_ids[topic]], EndedReason.UNSUBSCRIBED
            )
        current = self._current(index, topic)
        if current is not None:
            current[1] = self.now

    @rule(
        index=st.integers(0, SUBSCRIBERS - 1),
        hour=st.sampled_from([0, 1, 7, 9, 23]),
        weekly_hour=st.sampled_from([1, 7, 9]),
        timezone=st.sampled_from(["Europe/London", "America/New_York", "Asia/Kolkata"]),
        weekday=st.integers(0, 6),
    )
    def change_schedule(self, index, hour, weekly_hour, timezone, weekday):
        with self.app.app_context(), transaction():
            subscriber = self._subscriber(index)
            subscriber.daily_hour = hour
            subscriber.weekly_hour = weekly_hour
            subscriber.weekly_day = weekday
            subscriber.timezone = timezone

    @rule(index=st.integers(0, SUBSCRIBERS - 1), days=st.integers(1, 3))
    def pause(self, index, days):
        with self.app.app_context(), transaction():
            subscriber = self._subscriber(index)
            # A date in the subscriber's own calendar, which may already be tomorrow in UTC.
            until = services.local_today(subscriber) + timedelta(days=days)
            services.pause_subscriber(subscriber, until)
            ends = subscriber.pause_ends_at
        self.pauses[index].append((self.now, ends))

    @rule(index=st.integers(0, SUBSCRIBERS - 1))
    def resume(self, index):
        with self.app.app_context(), transaction():
            services.pause_subscriber(self._subscriber(index), None)
        if self.pauses[index] and self.pauses[index][-1][1] > self.now:
            self.pauses[index][-1] = (self.pauses[index][-1][0], self.now)

    @rule(topics=st.sets(st.sampled_from(TOPICS), min_size=1, max_size=2))
    def publish(self, topics):
        self.now += timedelta(minutes=1)
        number = len(self.articles) + 1
        article_id = create_article(
            self.app,
            f"Article {number}",
            [self.topic_ids[t] for t in sorted(topics)],
            self.now,
            url=f"https://news.example/article-{number}",
            alerted=False,
        )
        self.articles[article_id] = (self.now, tuple(sorted(topics)))
        with self.app.app_context():
            run_immediate_alerts(self.now)

    @rule(hours=st.integers(1, 30))
    def time_passes(self, hours):
        self._run_hours(self.now + timedelta(hours=hours))

    @precondition(lambda self: not self.crashed)
    @rule()
    def crash_next_run_half_way(self):
        """The next digest run dies after its first subscriber; the sweeper resumes it."""
        self.crashed = True
        real_write = planning._Planner.write
        hour = self.now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)

        def dying_write(planner, low, high):
            real_write(planner, low, low)
            planner.connection.commit()
            raise RuntimeError("crash")

        planning._Planner.write = dying_write
        try:
            with self.app.app_context():
                self.app.config["DIGEST_CHUNK_SIZE"] = 1
                for frequency in ("daily", "weekly"):
                    with contextlib.suppress(RuntimeError):
                        jobs.plan_run(frequency, hour)
        finally:
            planning._Planner.write = real_write
            self.app.config["DIGEST_CHUNK_SIZE"] = 20000

    @invariant()
    def nothing_sent_twice(self):
        received = self._received()
        for (index, channel), counts in received.items():
            repeated = {a: n for a, n in counts.items() if n > 1}
            assert not repeated, f"subscriber {index} got {repeated} twice by {channel}"

    # -- checking ---------------------------------------------------------------------------

    def _received(self) -> dict[tuple[int, str], Counter]:
        received: dict[tuple[int, str], Counter] = defaultdict(Counter)
        with self.app.app_context():
            rows = db.session.execute(
                select(
                    OutboxEmail.subscriber_id,
                    OutboxEmail.template,
                    EmailBody.subject,
                    EmailBody.text,
                ).join(EmailBody, EmailBody.id == OutboxEmail.body_id)
            ).all()
        for subscriber_id, template, subject, body in rows:
            index = self.subscribers.index(subscriber_id)
            for number in _ARTICLE_URL.findall(body):
                received[(index, _channel(template, subject))][int(number)] += 1
        return received

    def _followed_throughout(self, index, topics, since, until, frequencies) -> bool:
        for topic in topics:
            for start, end, frequency in self.follows[(index, topic)]:
                if start >= since:
                    continue
                if end is not None and end < until:
                    continue
                if frequency in frequencies:
                    return True
        return False

    def _digest_frequency_throughout(self, index, topic, since, until) -> bool:
        """Daily <-> weekly switches carry the window over; a switch via immediately doesn't."""
        intervals = [i for i in self.follows[(index, topic)] if (i[1] is None or i[1] > since)]
        if not intervals or intervals[0][0] >= since:
            return False
        for position, (_start, end, frequency) in enumerate(intervals):
            if frequency == Frequency.IMMEDIATELY:
                return False
            if position + 1 < len(intervals) and intervals[position + 1][0] != end:
                return False
        return intervals[-1][1] is None or intervals[-1][1] >= until

    def _ever_followed(self, index, topics, frequency) -> bool:
        return any(f == frequency for t in topics for _s, _e, f in self.follows[(index, t)])

    def _paused_during(self, index, since, until) -> bool:
        return any(start < until and end > since for start, end in self.pauses[index])

    def teardown(self):
        try:
            self._run_hours(self.now + timedelta(days=8, hours=1))
            received = self._received()
            end = self.now
            for article_id, (arrived, topics) in self.articles.items():
                number = int(_number(self.app, article_id))
                for index in range(SUBSCRIBERS):
                    daily = received[(index, Frequency.DAILY)][number]
                    weekly = received[(index, Frequency.WEEKLY)][number]
                    alerts = received[(index, "alert")][number]
                    assert daily <= 1 and weekly <= 1 and alerts <= 1
                    digests = daily + weekly
                    expected_digest = not self._paused_during(index, arrived, end) and any(
                        self._digest_frequency_throughout(index, topic, arrived, end)
                        for topic in topics
                    )
                    if expected_digest:
                        assert digests >= 1, (index, number, "digest missing")
                    if weekly:
                        assert self._ever_followed(index, topics, Frequency.WEEKLY), (
                            index,
                            number,
                            "weekly digest without a weekly topic",
                        )
                    if daily:
                        assert self._ever_followed(
                            index, topics, Frequency.DAILY
                        ) or self._ever_followed(index, topics, Frequency.IMMEDIATELY), (
                            index,
                            number,
                            "daily digest without a daily topic or a held-back alert",
                        )
                    ever_followed = any(self.follows[(index, t)] for t in topics)
                    if not ever_followed:
                        assert digests == 0 and alerts == 0, (index, number, "unfollowed topic")
                    expected_alert = not self._paused_during(index, arrived, arrived) and (
                        self._followed_throughout(
                            index, topics, arrived, arrived, {Frequency.IMMEDIATELY}
                        )
                    )
                    if expected_alert:
                        assert alerts == 1, (index, number, "alert missing")
        finally:
            empty_tables(self.app)


def _channel(template: str, subject: str) -> str:
    """``alert``, or the digest's frequency, as its subject names it ("Daily email alert: …")."""
    if template != "digest":
        return template
    return Frequency.DAILY if subject.startswith("Daily ") else Frequency.WEEKLY


def _number(app, article_id: int) -> str:
    from alertsvc.models import Article

    with app.app_context():
        url = db.session.get(Article, article_id).url
    return url.rsplit("-", 1)[1]


@pytest.mark.slow
def test_every_article_exactly_once(make_app):
    DigestMachine.app = make_app(ALERTS_DAILY_CAP=0, DIGEST_LOOKBACK_HOURS=48)
    runner = DigestMachine.TestCase
    runner.settings = settings(
        max_examples=15,
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    set_clock(lambda: DigestMachine.clock)
    try:
        runner().runTest()
    finally:
        set_clock(None)
