"""Mail leaves seconds after it is queued: on PostgreSQL, queueing sends ``NOTIFY`` and idle
workers (and the scheduler, for articles) ``LISTEN``.

The processes poll only every 30 s (worker) or hourly (the scheduler's immediate alerts)
here, so only a notification can get the email out within the 2 s the issue asks for. The
2 s is measured from just before the request; the mail directory is looked at every 50 ms.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import text

from alertsvc.delivery.wakeup import ARTICLES_CHANNEL, OUTBOX_CHANNEL, listen_url
from alertsvc.extensions import db
from alertsvc.models import utcnow
from tests.digests.helpers import alerts, at, digest, start_subscriptions_at
from tests.factories import create_article, create_subscriber, create_token, seed_topics
from tests.mail import read_message
from tests.processes import alertsvc_env, exit_code, kill, output, start, wait_for
from tests.subscriptions.helpers import post_signup

pytestmark = pytest.mark.skipif(
    not os.environ.get("ALERTSVC_TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="NOTIFY/LISTEN is PostgreSQL's: on SQLite the processes only poll",
)

# The requirement: a queued email reaches the transport within 2 s.
WITHIN_SECONDS = 2.0
WORKER_IDLE = "nothing due: waiting for new mail (notified), at most 30 s"
WORKER_LISTENING = "listening for alertsvc_outbox"


def start_idle_worker(database_url: str, tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """A worker that has found nothing to send and is listening, polling only every 30 s."""
    log = tmp_path / "worker.log"
    env = alertsvc_env(database_url, tmp_path / "mail", WORKER_POLL_SECONDS="30")
    process = start(["worker"], env, log)
    wait_for(
        lambda: WORKER_IDLE in output(log) and WORKER_LISTENING in output(log),
        timeout=60,
        what="the worker's first empty poll",
        processes=[process],
        logs=[log],
    )
    return process, log


def test_each_connection_says_which_process_it_belongs_to(app, database_url, tmp_path):
    """An operator looking at pg_stat_activity tells a worker's connections from the
    web's or a planner's by their application_name."""
    process, _log = start_idle_worker(database_url, tmp_path)
    try:
        with app.app_context():
            names = db.session.scalars(
                text(
                    "SELECT application_name FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " ORDER BY application_name"
                )
            ).all()
            db.session.remove()
        assert "alertsvc worker" in names, names
        assert "alertsvc-worker-listen" in names, names
    finally:
        kill(process)


def arrived(mail_dir: Path, started: float, what: str, logs: list[Path]) -> list[Path]:
    """Wait for the first email in ``mail_dir``, at most ``WITHIN_SECONDS`` after ``started``."""
    deadline = started + WITHIN_SECONDS
    while time.monotonic() < deadline:
        found = list(mail_dir.glob("*.eml"))
        if found:
            return found
        time.sleep(0.05)
    tails = "".join(f"\n--- {log.name}:\n{output(log)[-3000:]}" for log in logs)
    raise AssertionError(f"{what} did not arrive within {WITHIN_SECONDS} s{tails}")


def test_confirmation_email_leaves_at_once_with_the_worker_idle(
    app, client, database_url, tmp_path
):
    seed_topics(app)
    process, log = start_idle_worker(database_url, tmp_path)
    try:
        started = time.monotonic()
        post_signup(client, "new.reader@example.com")
        [path] = arrived(tmp_path / "mail", started, "the confirmation email", [log])
        message = read_message(path)
        assert message["To"] == "new.reader@example.com"
        assert "Confirm" in message["Subject"]

        # Idle again, it stops promptly on SIGTERM, not at the end of its 30 s poll.
        wait_for(
            lambda: output(log).count(WORKER_IDLE) == 2,
            timeout=30,
            what="the worker to be idle again",
            processes=[process],
            logs=[log],
        )
        process.send_signal(signal.SIGTERM)
        assert exit_code(process, 10, log) == 0, output(log)
        assert "Worker stopped: 1 sent" in output(log)
    finally:
        kill(process)


def test_a_lost_listening_connection_is_opened_again(app, client, database_url, tmp_path):
    seed_topics(app)
    process, log = start_idle_worker(database_url, tmp_path)
    try:
        with app.app_context():
            ended = db.session.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'alertsvc-worker-listen'"
                    " AND datname = current_database()"
                )
            ).all()
            db.session.remove()
        assert ended == [(True,)]
        wait_for(
            lambda: output(log).count(WORKER_LISTENING) == 2,
            timeout=30,
            what="the worker to listen again",
            processes=[process],
            logs=[log],
        )
        assert "lost the connection listening for alertsvc_outbox" in output(log)

        started = time.monotonic()
        post_signup(client, "new.reader@example.com")
        [path] = arrived(tmp_path / "mail", started, "the confirmation email", [log])
        assert read_message(path)["To"] == "new.reader@example.com"
    finally:
        kill(process)


def test_an_article_posted_through_the_api_is_alerted_at_once(app, client, database_url, tmp_path):
    topics = seed_topics(app)
    reader = create_subscriber(app, "reader@example.com", {topics["data"]: "immediately"})
    start_subscriptions_at(app, reader, utcnow() - timedelta(hours=1))
    token = create_token(app)
    scheduler_log = tmp_path / "scheduler.log"
    scheduler = start(
        ["scheduler"],
        alertsvc_env(database_url, tmp_path / "mail", ALERTS_INTERVAL_SECONDS="3600"),
        scheduler_log,
    )
    processes = [scheduler]
    try:
        wait_for(
            lambda: (
                "job run_immediate_alerts done" in output(scheduler_log)
                and "listening for alertsvc_articles" in output(scheduler_log)
            ),
            timeout=60,
            what="the scheduler to lead, run its first immediate alerts and listen",
            processes=[scheduler],
            logs=[scheduler_log],
        )
        worker, worker_log = start_idle_worker(database_url, tmp_path)
        processes.append(worker)

        started = time.monotonic()
        response = client.post(
            "/api/v1/articles",
            json={
                "guid": "pt-breach",
                "url": "https://news.example/breach",
                "title": "Breach at a council",
                "summary": "<p>Systems offline.</p>",
                "published": (utcnow() - timedelta(minutes=1)).isoformat(),
                "topics": ["data"],
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 201, response.json
        [path] = arrived(tmp_path / "mail", started, "the alert", [scheduler_log, worker_log])
        message = read_message(path)
        assert message["To"] == "reader@example.com"
        assert message["Subject"] == "Breach at a council"
    finally:
        for process in processes:
            kill(process)


@contextmanager
def listening(database_url: str, *channels: str) -> Iterator[Callable[[], list[str]]]:
    """A connection listening on ``channels``; yields a function returning the channels
    notified since it was last called (waiting a moment for them to come in)."""
    conninfo = listen_url(database_url)
    assert conninfo
    with psycopg.connect(conninfo, autocommit=True) as connection:
        for channel in channels:
            connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))

        def heard() -> list[str]:
            return [n.channel for n in connection.notifies(timeout=0.5)]

        yield heard


def test_planning_a_digest_run_and_alerting_an_article_wake_the_workers(app, database_url):
    topics = seed_topics(app)
    daily = create_subscriber(app, "daily@example.com", {topics["data"]: "daily"})
    quick = create_subscriber(app, "quick@example.com", {topics["data"]: "immediately"})
    for subscriber in (daily, quick):
        start_subscriptions_at(app, subscriber, at("2026-11-24T07:00"))
    create_article(app, "Open data strategy", [topics["data"]], at("2026-11-24T15:00"))

    with listening(database_url, OUTBOX_CHANNEL, ARTICLES_CHANNEL) as heard:
        assert digest(app, "daily", at("2026-11-25T07:00")).emails == 1
        assert heard() == [OUTBOX_CHANNEL]
        assert digest(app, "daily", at("2026-11-26T07:00")).emails == 0
        assert heard() == [], "a run that queued nothing wakes nobody"

        create_article(
            app, "Breach at a council", [topics["data"]], at("2026-11-25T09:00"), alerted=False
        )
        assert alerts(app, at("2026-11-25T09:01")).emails == 1
        assert heard() == [OUTBOX_CHANNEL]


def test_articles_to_alert_wake_the_scheduler_once_per_request(app, client, database_url):
    seed_topics(app)
    auth = {"Authorization": f"Bearer {create_token(app)}"}
    batch = [
        {
            "guid": f"pt-{n}",
            "url": f"https://news.example/{n}",
            "title": f"Story {n}",
            "summary": "<p>Text.</p>",
            "topics": ["data"],
        }
        for n in range(3)
    ]
    with listening(database_url, OUTBOX_CHANNEL, ARTICLES_CHANNEL) as heard:
        assert client.post("/api/v1/articles", json=batch, headers=auth).status_code == 201
        assert heard() == [ARTICLES_CHANNEL]
        assert client.post("/api/v1/articles", json=batch, headers=auth).status_code == 200
        assert heard() == [], "nothing new, nothing to alert"
