"""A digest audience due in the hour that has just ended, and the check that a run queued
each of them exactly once. Shared by the scenarios that plan a large digest.

Everything in SQL: a hundred thousand subscribers made one by one through Python would take
longer than the scenario. The subscribers want their daily digest at the London hour in
which the run ending ``window_end`` falls, so the scheduler's sweeper (which plans the
runs of the last ``DIGEST_LOOKBACK_HOURS`` that it finds missing) or ``alertsvc digest run
daily`` plans it now, with no clock faked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg

from alertsvc.digests.schedule import floor_hour
from alertsvc.models import utcnow
from bench._support import insert_articles

TOPICS = 8  # few topics, so few distinct digests to render: the run's cost is its writes
ARTICLES = 40
ZONE = "Europe/London"


def latest_window_end() -> datetime:
    """The end of the latest run that may be planned now: the start of this UTC hour."""
    return floor_hour(utcnow())


def local_hour(window_end: datetime) -> int:
    """The London hour whose daily digests the run ending ``window_end`` sends."""
    return window_end.astimezone(ZoneInfo(ZONE)).hour


def dsn_of(url: str) -> str:
    """A libpq connection string from a SQLAlchemy URL."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def seed_topics(connection: psycopg.Connection, at: datetime) -> list[str]:
    """The topics (``topic-1`` … ``topic-8``); their slugs."""
    connection.execute(
        """
        INSERT INTO topics (slug, name, description, created_at)
        SELECT 'topic-' || n, 'Topic ' || n, '', %(at)s FROM generate_series(1, %(topics)s) n
        """,
        {"at": at, "topics": TOPICS},
    )
    return [f"topic-{n}" for n in range(1, TOPICS + 1)]


def seed_due_audience(
    connection: psycopg.Connection, subscribers: int, window_end: datetime, prefix: str = "reader"
) -> None:
    """``subscribers`` confirmed readers (``<prefix><n>@example.com``) due in the daily run
    ending ``window_end``, each following one to three topics daily since the day before,
    and ``ARTICLES`` articles in every topic that arrived two hours before the window end:
    everyone in the audience gets an email. The topics must exist (``seed_topics``)."""
    day_before = window_end - timedelta(days=1)
    connection.execute(
        """
        INSERT INTO subscribers (email, created_at, confirmed_at, timezone, daily_hour,
                                 weekly_day, weekly_hour)
        SELECT %(prefix)s || n || '@example.com', %(start)s, %(start)s, %(zone)s, %(hour)s,
               n %% 7, (%(hour)s + 12) %% 24
        FROM generate_series(1, %(count)s) AS n
        """,
        {
            "prefix": prefix,
            "count": subscribers,
            "start": day_before,
            "zone": ZONE,
            "hour": local_hour(window_end),
        },
    )
    connection.execute(
        """
        INSERT INTO subscriptions (subscriber_id, topic_id, frequency, created_at,
                                   delivered_until, carried_position)
        SELECT s.id, t.id, 'daily', %(start)s, %(start)s, false
        FROM subscribers s
        JOIN topics t ON ((s.id + t.id) %% %(topics)s) < 1 + s.id %% 3
        WHERE s.email LIKE %(pattern)s
        """,
        {"start": day_before, "topics": TOPICS, "pattern": prefix + "%"},
    )
    arrived = window_end - timedelta(hours=2)
    first = insert_articles(connection, arrived, ARTICLES, ".</p>")
    connection.execute(
        """
        INSERT INTO article_topics (article_id, topic_id)
        SELECT a.id, t.id FROM articles a JOIN topics t
          ON (a.id + t.id) %% %(topics)s IN (0, 3)
        WHERE a.id >= %(first)s
        """,
        {"first": first, "topics": TOPICS},
    )
    connection.execute("ANALYZE")


@dataclass(frozen=True)
class RunCheck:
    """What a run queued, counted in SQL against the audience it should have served."""

    run_id: int | None
    status: str | None
    audience: int  # confirmed, due in the run's hour, following a topic daily
    ledger: int  # ledger rows of the run
    emails: int  # digest rows of the run in the outbox
    twice: int  # subscribers of the audience with more than one digest of the run
    skipped: int  # subscribers of the audience with none
    strangers: int  # digests of the run to someone outside the audience

    @property
    def exactly_once(self) -> bool:
        return (
            self.status == "planned"
            and self.emails == self.audience
            and self.ledger == self.audience
            and not (self.twice or self.skipped or self.strangers)
        )


def check_run(connection: psycopg.Connection, window_end: datetime, prefix: str) -> RunCheck:
    """Count the daily run ending ``window_end`` against the ``prefix`` audience."""
    connection.execute("SET statement_timeout = '120s'")  # a bounded check, whatever the plan
    found = connection.execute(
        "SELECT id, status FROM digest_runs WHERE frequency = 'daily' AND window_end = %s",
        (window_end,),
    ).fetchone()
    run_id, status = found if found else (None, None)
    audience_sql = """
        SELECT s.id FROM subscribers s
        WHERE s.email LIKE %(pattern)s AND s.confirmed_at IS NOT NULL
          AND s.daily_hour = %(hour)s AND s.timezone = %(zone)s
          AND EXISTS (SELECT 1 FROM subscriptions sub WHERE sub.subscriber_id = s.id
                      AND sub.frequency = 'daily' AND sub.ended_at IS NULL)
    """
    params = {
        "pattern": prefix + "%",
        "hour": local_hour(window_end),
        "zone": ZONE,
        "run": run_id,
    }
    row = connection.execute(
        f"""
        WITH audience AS ({audience_sql}),
             queued AS (SELECT subscriber_id, count(*) AS n FROM outbox
                        WHERE run_id = %(run)s AND template = 'digest' GROUP BY subscriber_id)
        SELECT count(a.id),
               (SELECT count(*) FROM digest_deliveries WHERE run_id = %(run)s),
               coalesce(sum(q.n), 0),
               count(*) FILTER (WHERE q.n > 1),
               count(*) FILTER (WHERE q.subscriber_id IS NULL),
               count(*) FILTER (WHERE a.id IS NULL)
        FROM audience a FULL JOIN queued q ON q.subscriber_id = a.id
        """,
        params,
    ).fetchone()
    return RunCheck(run_id, status, *(int(value) for value in row))
