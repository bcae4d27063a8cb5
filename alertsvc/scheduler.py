"""The scheduler process: APScheduler 3.x jobs, run by exactly one leader at a time.

The jobs themselves live in each capability's ``jobs.py`` (``articles``, ``digests``,
``subscriptions``); each owns its transactions and fails small (one unit at a time, see
``alertsvc.retries``). This module only registers them and runs each in an app context.

Any number of ``alertsvc scheduler`` processes may run; one holds the leader lock and runs
the jobs, the others wait and take over when it goes. On PostgreSQL the lock is a session
advisory lock, released by the server when the leader's connection dies. On SQLite it is
an exclusive ``flock`` on a file beside the database, released by the kernel when the
leader process dies.
"""

from __future__ import annotations

import fcntl
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import IO, Any

import click
from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from alertsvc.articles.jobs import poll_due_feeds
from alertsvc.database import database_unavailable, schema_problem_once_reachable
from alertsvc.delivery.wakeup import ARTICLES_CHANNEL, Listener, listen_url
from alertsvc.digests.jobs import plan_due_digests, run_immediate_alerts, sweep_digest_runs
from alertsvc.digests.planning import PlanResult
from alertsvc.extensions import db
from alertsvc.logs import job_context
from alertsvc.models import utcnow
from alertsvc.retention.jobs import purge_expired_data
from alertsvc.subscriptions.jobs import purge_signup_requests

log = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 0x616C657274  # "alert"
IMMEDIATE_ALERTS_JOB = "immediate_alerts"
# How often the leader checks it still holds the lock (its connection is alive).
LEADERSHIP_CHECK_SECONDS = 5
# TCP keepalive of the leader lock's connection, set on the server's side of it: PostgreSQL
# frees the lock only once it notices the connection is gone, which for a leader whose
# network was cut takes over two hours with the operating system's defaults, and about
# idle + interval x count seconds with these.
LOCK_KEEPALIVE = {
    "tcp_keepalives_idle": 10,
    "tcp_keepalives_interval": 5,
    "tcp_keepalives_count": 3,
}
# How often a scheduler that cannot reach the database tries again to take the lead.
DATABASE_RETRY_SECONDS = 1.0
# The retention purge, daily (UTC), away from the top of the hour when digest runs start.
RETENTION_PURGE_HOUR = 3
RETENTION_PURGE_MINUTE = 37


class LeaderLock:
    """Held by the one scheduler that runs jobs."""

    def acquire(self) -> bool:
        raise NotImplementedError

    def still_held(self) -> bool:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError


class PostgresLeaderLock(LeaderLock):
    def __init__(self, app: Flask) -> None:
        self.app = app
        self.connection: Connection | None = None

    def acquire(self) -> bool:
        with self.app.app_context():
            connection = db.engine.connect()
        try:
            for name, seconds in LOCK_KEEPALIVE.items():
                # Session settings any user may change; a Unix socket ignores them.
                connection.execute(
                    text("SELECT set_config(:name, :value, false)"),
                    {"name": name, "value": str(seconds)},
                )
            held = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            ).scalar()
            connection.commit()
        except BaseException:
            connection.close()
            raise
        if held:
            self.connection = connection
            return True
        connection.close()
        return False

    def still_held(self) -> bool:
        if self.connection is None:
            return False
        try:
            self.connection.execute(text("SELECT 1"))
            self.connection.commit()
        except Exception:
            log.exception("lost the scheduler leader connection")
            return False
        return True

    def release(self) -> None:
        """Unlock before the connection goes back to the pool, which would keep the lock.

        Unlocking is synchronous; closing the connection frees the lock only once the
        server notices, so another scheduler asking at once could still be refused.
        """
        if self.connection is None:
            return
        connection, self.connection = self.connection, None
        try:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
            connection.commit()
        except SQLAlchemyError:
            log.exception("could not unlock; dropping the connection frees the lock")
            connection.invalidate()
        finally:
            connection.close()


class FileLeaderLock(LeaderLock):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: IO[str] | None = None

    def acquire(self) -> bool:
        handle = self.path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self.handle = handle
        return True

    def still_held(self) -> bool:
        return self.handle is not None

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def make_leader_lock(app: Flask) -> LeaderLock:
    with app.app_context():
        dialect = db.engine.dialect.name
        database = db.engine.url.database
    if dialect == "postgresql":
        return PostgresLeaderLock(app)
    path = Path(database) if database else Path(app.instance_path) / "alertsvc.sqlite3"
    return FileLeaderLock(path.with_name(path.name + ".scheduler.lock"))


def _describe(outcome: Any) -> str:
    """A job's outcome for the log; digest runs that served nobody are only counted (the
    sweeper's first pass on a new install creates a run for every hour it looks back on)."""
    if isinstance(outcome, list) and all(isinstance(item, PlanResult) for item in outcome):
        served = [
            f"{r.frequency} run ending {r.window_end:%Y-%m-%d %H:%M}: {r.subscribers}"
            f" subscribers, {r.emails} emails, {r.seconds:.2f} s"
            for r in outcome
            if r.subscribers
        ]
        return "; ".join([f"{len(outcome)} digest runs", *served])
    return str(outcome)


def _job(app: Flask, function: Callable[[], Any]) -> Callable[[], None]:
    """Run ``function``, a job that owns its transactions, in its own app context."""

    def run() -> None:
        with job_context(function.__name__), app.app_context():
            outcome = function()
            log.info("job %s done: %s", function.__name__, _describe(outcome))

    run.__name__ = run.__qualname__ = function.__name__  # APScheduler logs the qualname
    return run


class WakeableJob:
    """A job that can be run at once from outside its schedule (``wake``): when articles
    arrive, immediate alerts go out without waiting for the next interval.

    A wake while the job runs is not lost and does not make APScheduler skip a run ("maximum
    number of running instances reached"): the running job goes round once more, so an
    article stored just after it last looked is still alerted at once.
    """

    def __init__(self, job_id: str, function: Callable[[], None]) -> None:
        self.job_id = job_id
        self.function = function
        self.__name__ = self.__qualname__ = function.__name__  # APScheduler logs the qualname
        self.lock = threading.Lock()
        self.running = False
        self.again = False
        self.scheduler: BackgroundScheduler | None = None

    def __call__(self) -> None:
        with self.lock:
            self.running = True
        try:
            while True:
                with self.lock:
                    self.again = False
                self.function()
                with self.lock:
                    if not self.again:
                        self.running = False
                        return
        except BaseException:
            with self.lock:
                self.running = False
            raise

    def wake(self) -> None:
        with self.lock:
            if self.running:
                self.again = True
                return
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.modify_job(self.job_id, next_run_time=utcnow())


def build_scheduler(
    app: Flask, lock: LeaderLock, alerts: WakeableJob | None = None
) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        _job(app, purge_signup_requests),
        "interval",
        hours=1,
        id="purge_signup_requests",
        next_run_time=utcnow(),
        max_instances=1,
        coalesce=True,
    )

    feed_interval = float(app.config["FEEDS_POLL_INTERVAL_SECONDS"])
    scheduler.add_job(
        _job(app, poll_due_feeds),
        "interval",
        seconds=min(feed_interval, 60.0),  # each feed is due every interval; look each minute
        id="poll_due_feeds",
        next_run_time=utcnow(),
        max_instances=1,
        coalesce=True,
    )

    config = app.config
    scheduler.add_job(
        _job(app, plan_due_digests),
        "cron",
        minute=int(config["DIGEST_RUN_MINUTE"]),
        id="plan_due_digests",
        max_instances=1,
        coalesce=True,
    )
    alerts = alerts or WakeableJob(IMMEDIATE_ALERTS_JOB, _job(app, run_immediate_alerts))
    alerts.scheduler = scheduler
    scheduler.add_job(
        alerts,
        "interval",
        seconds=float(config["ALERTS_INTERVAL_SECONDS"]),
        id=IMMEDIATE_ALERTS_JOB,
        next_run_time=utcnow(),
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        _job(app, sweep_digest_runs),
        "interval",
        minutes=10,
        id="sweep_digest_runs",
        next_run_time=utcnow(),
        max_instances=1,
        coalesce=True,
    )

    scheduler.add_job(
        _job(app, purge_expired_data),
        "cron",
        hour=RETENTION_PURGE_HOUR,
        minute=RETENTION_PURGE_MINUTE,
        id="purge_expired_data",
        max_instances=1,
        coalesce=True,
    )

    def check_leadership() -> None:
        """A leader whose lock connection died (the database restarted or failed over) has
        lost the lock with it: take it again at once if nobody else has, else stop the jobs
        and wait to lead again."""
        if lock.still_held():
            return
        lock.release()
        try:
            taken = lock.acquire()
        except Exception as error:
            if not database_unavailable(error):
                raise
            taken = False
        if taken:
            log.warning("lost the leader lock's connection; took the lead again")
            return
        log.error("no longer the leader: stopping the jobs until this scheduler leads again")
        scheduler.shutdown(wait=False)

    scheduler.add_job(
        check_leadership,
        "interval",
        seconds=LEADERSHIP_CHECK_SECONDS,
        id="check_leadership",
        name="check_leadership",
    )
    return scheduler


def run_scheduler(app: Flask, wait_seconds: float = 5.0) -> None:
    """Wait to lead, then run the jobs until stopped; a leader that loses the lead goes
    back to waiting, so a database restart never ends the process.

    The signal handler only sets ``stopping``; the main thread shuts the scheduler down.
    Shutting down inside the handler could deadlock (the handler may interrupt the main
    thread while it holds the executor's lock) or be lost (before the scheduler runs).
    """
    # APScheduler logs each run's start and end at INFO: two lines every few seconds for the
    # leadership check alone. Each job logs what it did (``job … done``); APScheduler's
    # warnings and errors (a missed run, a job that raised) still show.
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
    lock = make_leader_lock(app)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while wait_to_lead(lock, stopping, wait_seconds):
        lead(app, lock, stopping)
    log.info("scheduler stopped")


def wait_to_lead(lock: LeaderLock, stopping: threading.Event, wait_seconds: float) -> bool:
    """Take the leader lock, trying every ``wait_seconds`` while another scheduler leads
    and every ``DATABASE_RETRY_SECONDS`` while the database cannot be reached; False if
    stopped first."""
    announced: str | None = None
    while not stopping.is_set():
        try:
            if lock.acquire():
                return True
            wait, why = wait_seconds, "another scheduler leads; waiting to take over"
        except Exception as error:
            if not database_unavailable(error):
                raise
            wait = min(wait_seconds, DATABASE_RETRY_SECONDS)
            why = "cannot reach the database to take the lead; trying again every second"
            if announced != why:
                log.error("%s (%s)", why, (str(error).strip().splitlines() or [""])[0])
                announced = why
        if announced != why:
            log.info(why)
            announced = why
        stopping.wait(wait)
    return False


def lead(app: Flask, lock: LeaderLock, stopping: threading.Event) -> None:
    """Run the jobs while holding the lock, until stopped or the lead is lost."""
    log.info("scheduler leading")
    lost = threading.Event()
    alerts = WakeableJob(IMMEDIATE_ALERTS_JOB, _job(app, run_immediate_alerts))
    scheduler = build_scheduler(app, lock, alerts)
    scheduler.add_listener(lambda event: lost.set(), EVENT_SCHEDULER_SHUTDOWN)
    conninfo = listen_url(app.config["SQLALCHEMY_DATABASE_URI"])
    # Only the leader listens: it is the one that runs the job.
    listener = (
        Listener(conninfo, ARTICLES_CHANNEL, alerts.wake, name="alertsvc-scheduler-listen")
        if conninfo
        else None
    )
    try:
        scheduler.start()
        if listener:
            listener.start()
        # Wake now and then: the kernel may deliver SIGTERM to a job thread, and Python runs
        # the handler only when the main thread next wakes.
        while not lost.is_set() and not stopping.wait(timeout=1.0):
            pass
    finally:
        if listener:
            listener.close()
        if scheduler.running:
            scheduler.shutdown(wait=True)  # let running jobs finish while still the leader
        lock.release()


@click.command("scheduler")
@click.option(
    "--wait-seconds",
    default=5.0,
    show_default=True,
    help="How often a waiting scheduler tries to take the lead.",
)
@with_appcontext
def scheduler_command(wait_seconds: float) -> None:
    """Run the scheduled jobs (one leader; others wait to take over)."""
    problem = schema_problem_once_reachable()
    if problem:
        raise click.ClickException(problem)
    run_scheduler(current_app._get_current_object(), wait_seconds)  # type: ignore[attr-defined]
