"""What the sending scenarios share: the SES sink, a queue of emails, worker processes, and
the reckoning of what reached the sink against what the outbox says.

Workers are real ``alertsvc worker`` processes with the ``ses`` transport pointed at
``bench/_ses_sink.py`` (boto3 ``sesv2`` over HTTP, as in production), each in a process
group of its own so that a SIGKILL reaches it and nothing else.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench._support import render_url, step
from bench.reliability._common import scenario_database
from bench.reliability._service_processes import (
    kill,
    ses_env,
    sink_process,
    start_alertsvc,
    stop_group,
    stop_groups,
)

SECRET_KEY = "reliability-scenarios-only-not-a-real-key-0123456789abcdefghijklmnop"
# Waits on processes are bounded: a worker that ignores SIGTERM this long is killed.
STOP_SECONDS = 20.0


# -- the sink ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sink:
    url: str

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_sink/stats", timeout=30).json()

    def arrivals(self) -> list[tuple[float, str]]:
        """(time, Message-ID) of every message the sink accepted."""
        pairs = httpx.get(f"{self.url}/_sink/arrivals", timeout=60).json()
        return [(at, found) for at, found in pairs]

    def calls(self) -> list[tuple[float, str, str]]:
        """(time, Message-ID, outcome) of every SendEmail call, throttled ones included."""
        return [tuple(call) for call in httpx.get(f"{self.url}/_sink/calls", timeout=60).json()]


@contextlib.contextmanager
def ses_sink(
    *, throttle: float = 0.0, slow: float = 0.0, slow_seconds: float = 2.0, seed: int = 15
) -> Iterator[Sink]:
    """``bench/_ses_sink.py`` on a free port, stopped (its whole group) on leaving."""
    options = ["--throttle", str(throttle), "--slow", str(slow)]
    options += ["--slow-seconds", str(slow_seconds), "--seed", str(seed)]
    with sink_process(
        *options, output=None, stop=lambda process: stop_group(process, STOP_SECONDS)
    ) as url:
        yield Sink(url)


# -- the database --------------------------------------------------------------------------


def libpq(database_url: str) -> str:
    """The SQLAlchemy URL as psycopg wants it."""
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


def alertsvc_env(database_url: str, sink: Sink | None, **settings: object) -> dict[str, str]:
    """This environment without any ``ALERTSVC_*`` of its own (the test suite's), plus the
    service's settings for a worker sending through SES to ``sink``."""
    return ses_env(
        database_url,
        sink.url if sink is not None else None,
        SECRET_KEY,
        settings,
        AWS_EC2_METADATA_DISABLED="true",
    )


def migrate(database_url: str) -> None:
    """The real migrations (``alertsvc db upgrade``) on the scenario's database, run in this
    process: a CLI process of its own would spend most of its time importing, seconds on a
    busy machine, inside the short variant's minute."""
    from flask_migrate import upgrade

    from alertsvc import create_app
    from alertsvc.extensions import db

    app = create_app(
        {"ENV": "development", "SECRET_KEY": SECRET_KEY, "SQLALCHEMY_DATABASE_URI": database_url}
    )
    # The app's logging set-up would log every migration and every request the scenario
    # makes to the sink.
    for name in ("alembic", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with app.app_context():
        try:
            upgrade()
        finally:
            db.engine.dispose()


def queue_emails(database_url: str, count: int) -> None:
    """``count`` subscribers and one queued email each, set-based, as the app leaves them.

    Odd rows are ordinary emails with their own address, subject and Message-ID (as
    ``queue_email`` writes them); even rows are digest rows on one shared body, given their
    address, subject and Message-ID by the worker that first claims them.
    """
    with psycopg.connect(libpq(database_url), autocommit=True) as connection:
        connection.execute(
            "INSERT INTO subscribers (email, created_at, confirmed_at, timezone, daily_hour,"
            "                         weekly_day, weekly_hour)"
            " SELECT 'reader' || n || '@example.com', now(), now(), 'Europe/London', 7, 0, 7"
            " FROM generate_series(1, %(count)s) AS n",
            {"count": count},
        )
        body_id = connection.execute(
            "INSERT INTO email_bodies (content_key, subject, html, text, created_at)"
            " VALUES ('reliability', 'Daily email alert: 1 new article on Data',"
            "         '<p>Open data strategy published</p>',"
            "         'Open data strategy published', now()) RETURNING id"
        ).fetchone()[0]
        connection.execute(
            "INSERT INTO outbox (created_at, template, to_address, subject, context,"
            "                    subscriber_id, unsubscribe_topic_ids, body_id, message_id,"
            "                    status, attempts, next_attempt_at)"
            " SELECT now() - interval '1 second',"
            "        CASE WHEN mod(s.id, 2) = 1 THEN 'manage_link' ELSE 'digest' END,"
            "        CASE WHEN mod(s.id, 2) = 1 THEN s.email END,"
            "        CASE WHEN mod(s.id, 2) = 1 THEN 'Manage your email alerts' END,"
            "        CAST('{}' AS json), s.id,"
            "        CASE WHEN mod(s.id, 2) = 0 THEN CAST('[1]' AS json) END,"
            "        CASE WHEN mod(s.id, 2) = 0 THEN %(body)s END,"
            "        CASE WHEN mod(s.id, 2) = 1"
            "             THEN '<reliability.' || s.id || '@alerts.example.org>' END,"
            "        'queued', 0, now() - interval '1 second'"
            " FROM subscribers s",
            {"body": body_id},
        )
        connection.execute("VACUUM ANALYZE outbox")


def unsent(database_url: str) -> int:
    with psycopg.connect(libpq(database_url), autocommit=True) as connection:
        return connection.execute("SELECT count(*) FROM outbox WHERE status <> 'sent'").fetchone()[
            0
        ]


def wait_until_sent(database_url: str, timeout_s: float, what: str) -> float | None:
    """Poll until every outbox row is sent; the time it happened, or None at the deadline."""
    deadline = time.monotonic() + timeout_s
    last_report = 0.0
    while time.monotonic() < deadline:
        left = unsent(database_url)
        if left == 0:
            return time.time()
        if time.monotonic() - last_report >= 5:
            step(f"{what}: {left:,} not sent yet")
            last_report = time.monotonic()
        time.sleep(0.25)
    return None


@contextlib.contextmanager
def sending_scenario(
    name: str, logs_prefix: str, **sink_options: float
) -> Iterator[tuple[str, Sink, Path]]:
    """The scenario's own database (``name``), migrated; the SES sink (``sink_options``);
    a temporary directory for the workers' logs: the database URL, the sink, the folder."""
    with (
        scenario_database(name) as url,
        ses_sink(**sink_options) as sink,
        tempfile.TemporaryDirectory(prefix=logs_prefix) as logs,
    ):
        database_url = render_url(url)
        migrate(database_url)
        yield database_url, sink, Path(logs)


def worker_logs(logs: Path) -> list[str]:
    """The text of every log in ``logs``."""
    return [path.read_text(errors="replace") for path in logs.glob("*.log")]


# -- workers -------------------------------------------------------------------------------


@dataclass
class WorkerProcess:
    """One ``alertsvc worker`` process, and the log it writes."""

    process: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.time)

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_worker(env: Mapping[str, str], log: Path, *args: str) -> WorkerProcess:
    """``alertsvc worker ARGS`` as its own Python process in a group of its own (no ``uv
    run`` in between: the pid SIGKILL reaches is the worker's)."""
    return WorkerProcess(start_alertsvc(["worker", *args], env, log), log)


def kill_worker(worker: WorkerProcess) -> None:
    """SIGKILL, as a crash or the OOM killer would, and wait until it is gone."""
    kill(worker.process, wait_s=STOP_SECONDS)


def stop_workers(workers: list[WorkerProcess]) -> None:
    """Ask every worker to stop at once (so they stop together), then wait for each."""
    stop_groups([worker.process for worker in workers], STOP_SECONDS)


# -- the reckoning -------------------------------------------------------------------------


@dataclass(frozen=True)
class Reckoning:
    """The outbox against the sink, after the run."""

    rows: int
    by_status: dict[str, int]
    lost: int  # rows not sent, or sent without their Message-ID ever reaching the sink
    duplicated: int  # arrivals at the sink beyond the first of each Message-ID
    unknown: int  # Message-IDs at the sink that no outbox row has
    retakes: int  # claims beyond each row's first (a lease that ran out, or a retry)


def reckon(database_url: str, arrivals: list[tuple[float, str]]) -> Reckoning:
    with psycopg.connect(libpq(database_url), autocommit=True) as connection:
        rows = connection.execute("SELECT status, message_id, attempts FROM outbox").fetchall()
    by_status = Counter(status for status, _, _ in rows)
    seen = Counter(message_id for _, message_id in arrivals)
    ours = {message_id for _, message_id, _ in rows}
    lost = sum(
        1 for status, message_id, _ in rows if status != "sent" or seen.get(message_id, 0) == 0
    )
    return Reckoning(
        rows=len(rows),
        by_status=dict(by_status),
        lost=lost,
        duplicated=sum(n - 1 for message_id, n in seen.items() if n > 1 and message_id in ours),
        unknown=sum(n for message_id, n in seen.items() if message_id not in ours),
        retakes=sum(max(attempts - 1, 0) for _, _, attempts in rows),
    )
