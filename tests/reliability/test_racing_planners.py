"""Several ``alertsvc digest run`` processes started at once on the same run (an operator
triggering the run the scheduler is already planning): none dies, everyone is served once.

PostgreSQL only: there planners really run at once (SQLite's single writer serialises them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select, text

from alertsvc.extensions import db
from alertsvc.models import DigestDelivery, DigestRun, EmailBody, OutboxEmail, RunStatus
from tests.digests.helpers import at
from tests.factories import rows
from tests.processes import alertsvc_env, exit_code, kill, output, start, wait_for

SUBSCRIBERS = 2000
PLANNERS = 3
REPETITIONS = 3
WINDOW_END = at("2026-11-25T07:00")


def _populate(app) -> None:
    """Four topics; subscribers following every non-empty combination of them, from one of
    sixteen starting points; an article every half hour: some 240 distinct digests, so the
    planners store many shared bodies at once."""
    day_before = WINDOW_END - timedelta(days=1)
    with app.app_context():
        db.session.execute(
            text(
                "INSERT INTO topics (slug, name, description, created_at)"
                " SELECT 'topic-' || n, 'Topic ' || n, '', :start"
                " FROM generate_series(0, 3) AS n"
            ),
            {"start": day_before},
        )
        db.session.execute(
            text(
                "INSERT INTO subscribers (email, created_at, confirmed_at, timezone, daily_hour,"
                "                         weekly_day, weekly_hour)"
                " SELECT 'reader' || n || '@example.com', :start, :start, 'Europe/London', 7, 0, 7"
                " FROM generate_series(1, :count) AS n"
            ),
            {"start": day_before, "count": SUBSCRIBERS},
        )
        db.session.execute(
            text(
                "INSERT INTO subscriptions (subscriber_id, topic_id, frequency, created_at,"
                "                           delivered_until, carried_position)"
                " SELECT s.id, t.id, 'daily', :start,"
                "        :start + (s.id % 16) * interval '60 minutes', false"
                " FROM subscribers s JOIN topics t"
                "   ON ((s.id % 15 + 1) >> CAST(substr(t.slug, 7) AS INTEGER)) & 1 = 1"
            ),
            {"start": day_before},
        )
        db.session.execute(
            text(
                "INSERT INTO articles (guid, url, title, summary, author, published_at, source,"
                "                      created_at, revision, alerts_processed_at)"
                " SELECT 'https://news.example/' || n, 'https://news.example/' || n,"
                "        'Article ' || n, '', 'Reporter', moment, 'cli', moment, 0, moment"
                " FROM (SELECT n, :start + n * interval '30 minutes' AS moment"
                "       FROM generate_series(1, 47) AS n) arriving"
            ),
            {"start": day_before},
        )
        db.session.execute(
            text(
                "INSERT INTO article_topics (article_id, topic_id)"
                " SELECT a.id, t.id FROM articles a JOIN topics t"
                "   ON t.slug = 'topic-' || (a.id % 4)"
            )
        )
        db.session.commit()


def _forget_the_run(app) -> None:
    """As before the run: no run, ledger, outbox rows or bodies."""
    with app.app_context():
        for table in ("outbox", "digest_deliveries", "email_bodies", "digest_run_slots"):
            db.session.execute(text(f"DELETE FROM {table}"))
        db.session.execute(text("DELETE FROM digest_runs"))
        db.session.commit()


@contextmanager
def _held_start(app) -> Iterator[Callable[[], int]]:
    """Hold the run's row, uncommitted, so that planners started one by one all wait at the
    same step; let them go together when the block ends (the row is rolled back, as if it
    had never been). Yields a count of the planners waiting on it."""
    with app.app_context():
        connection = db.engine.connect()
        connection.execute(
            insert(DigestRun).values(
                frequency="daily",
                window_start=WINDOW_END,
                window_end=WINDOW_END,
                status=RunStatus.PLANNING,
            )
        )

        def waiting() -> int:
            with db.engine.connect() as watcher:
                return watcher.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                        " AND query LIKE 'INSERT INTO digest_runs%'"
                    )
                ).scalar_one()

        try:
            yield waiting
        finally:
            connection.rollback()
            connection.close()


def test_planners_started_at_once_on_one_run_never_fail(app, database_url, tmp_path):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite's single writer already serialises planners")
    _populate(app)
    env = alertsvc_env(database_url, tmp_path / "mail", DIGEST_CHUNK_SIZE="200")
    command = ["digest", "run", "daily", "--at", "2026-11-25T07:00Z"]

    for repetition in range(REPETITIONS):
        _forget_the_run(app)
        logs = [tmp_path / f"planner-{repetition}-{n}.log" for n in range(PLANNERS)]
        planners = []
        try:
            with _held_start(app) as waiting:
                planners = [start(command, env, log) for log in logs]
                wait_for(
                    lambda: waiting() == PLANNERS,
                    timeout=120,
                    what="every planner to reach the run",
                    processes=planners,
                    logs=logs,
                )
            codes = [
                exit_code(planner, 120, log) for planner, log in zip(planners, logs, strict=True)
            ]
        finally:
            for planner in planners:
                kill(planner)

        said = [output(log) for log in logs]
        assert codes == [0] * PLANNERS, said
        assert not any("Traceback" in words or "Error" in words for words in said), said
        full = f"Daily run ending 2026-11-25 07:00 UTC: {SUBSCRIBERS} subscribers"
        already = "The daily run ending 2026-11-25 07:00 UTC was already planned"
        assert sorted(full in words for words in said) == [False] * (PLANNERS - 1) + [True], said
        assert sum(already in words for words in said) == PLANNERS - 1, said

        served = rows(app, select(DigestDelivery.subscriber_id))
        assert sorted(served) == sorted(set(served)) and len(served) == SUBSCRIBERS
        queued = rows(app, select(OutboxEmail.subscriber_id))
        assert sorted(queued) == sorted(served), "one digest each, everyone had articles"
        assert rows(app, select(DigestRun.status)) == [RunStatus.PLANNED]
        bodies = rows(app, select(func.count()).select_from(EmailBody))
        assert bodies[0] > 150
