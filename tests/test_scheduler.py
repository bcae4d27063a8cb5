"""The scheduler: one leader at a time, a waiting one takes over, and the retention purge."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from datetime import timedelta

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask
from sqlalchemy import select, text

from alertsvc.database import transaction
from alertsvc.digests.alerts import AlertResult
from alertsvc.extensions import db
from alertsvc.models import SignupRequest, utcnow
from alertsvc.scheduler import WakeableJob, _describe, build_scheduler, make_leader_lock
from alertsvc.subscriptions.jobs import purge_signup_requests
from tests.factories import create_subscriber, rows
from tests.processes import alertsvc_env, exit_code, kill, output, start, wait_for

LEADING = "scheduler leading"
WAITING = "another scheduler leads; waiting to take over"


def test_second_leader_lock_is_refused_until_the_first_is_released(app, app_with):
    elsewhere = app_with()  # another process: its own engine and connections
    first = make_leader_lock(app)
    second = make_leader_lock(elsewhere)
    try:
        assert first.acquire()
        assert first.still_held()
        assert not second.acquire()
        assert not make_leader_lock(app).acquire(), "not even from the same process"
        assert not second.still_held()

        first.release()
        assert not first.still_held()
        assert second.acquire()
        assert second.still_held()
        assert not first.acquire()
    finally:
        first.release()
        second.release()


def test_the_leader_lock_connection_is_one_the_server_notices_is_gone_within_seconds(app):
    """A leader cut off from the network holds the lock until PostgreSQL notices its
    connection died: TCP keepalive on the lock's connection makes that seconds, not hours."""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("the file lock beside an SQLite database has no connection")
    lock = make_leader_lock(app)
    try:
        assert lock.acquire()
        shown = {
            name: lock.connection.execute(text(f"SHOW {name}")).scalar()
            for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")
        }
    finally:
        lock.release()

    assert shown == {
        "tcp_keepalives_idle": "10",
        "tcp_keepalives_interval": "5",
        "tcp_keepalives_count": "3",
    }


def test_released_leader_lock_can_be_taken_again_by_the_same_process(app, app_with):
    elsewhere = app_with()
    lock = make_leader_lock(app)
    try:
        for _ in range(3):
            assert lock.acquire()
            lock.release()
        other = make_leader_lock(elsewhere)
        assert other.acquire(), "released means another process can lead"
        other.release()
    finally:
        lock.release()


def test_a_waiting_scheduler_takes_over_when_the_leader_dies(database_url, tmp_path):
    env = alertsvc_env(database_url, tmp_path / "mail")
    logs = [tmp_path / "scheduler-1.log", tmp_path / "scheduler-2.log"]
    processes = []
    try:
        for log in logs:
            processes.append(start(["scheduler", "--wait-seconds", "0.5"], env, log))

        def says(index: int, words: str) -> bool:
            return words in output(logs[index])

        wait_for(
            lambda: all(says(i, LEADING) or says(i, WAITING) for i in (0, 1)),
            timeout=60,
            what="both schedulers to start",
            processes=processes,
            logs=logs,
        )
        leaders = [i for i in (0, 1) if says(i, LEADING)]
        assert len(leaders) == 1, [output(log) for log in logs]
        [leader] = leaders
        follower = 1 - leader
        assert says(follower, WAITING)

        kill(processes[leader])
        wait_for(
            lambda: says(follower, LEADING),
            timeout=10,
            what="the other scheduler to lead",
            processes=[processes[follower]],
            logs=logs,
        )

        wait_for(
            lambda: says(follower, "job sweep_digest_runs done"),
            timeout=10,
            what="the new leader to run its jobs",
            processes=[processes[follower]],
            logs=logs,
        )
        processes[follower].send_signal(signal.SIGTERM)
        assert exit_code(processes[follower], 20, logs[follower]) == 0, output(logs[follower])
        said = output(logs[follower])
        assert "scheduler stopped" in said
        # Each job says what it did; APScheduler's own line per run is noise.
        assert "Running job" not in said and "executed successfully" not in said, said
    finally:
        for process in processes:
            kill(process)


def signup_request(app: Flask, email: str, age: timedelta, *, confirmed: bool = False) -> int:
    subscriber_id = create_subscriber(app, email, confirmed=confirmed)
    created = utcnow() - age
    with app.app_context(), transaction() as session:
        request = SignupRequest(
            subscriber_id=subscriber_id,
            topic_ids=[],
            frequency="daily",
            timezone="Europe/London",
            daily_hour=7,
            weekly_day=0,
            weekly_hour=7,
            created_at=created,
            confirmed_at=created + timedelta(hours=1) if confirmed else None,
        )
        session.add(request)
        session.flush()
        return request.id


@pytest.mark.parametrize("retention_days", [30, 7])
def test_purge_deletes_only_unconfirmed_signup_requests_past_retention(app_with, retention_days):
    app = app_with(SIGNUP_REQUEST_RETENTION_DAYS=retention_days)
    day = timedelta(days=1)
    expired = signup_request(app, "expired@example.com", (retention_days + 1) * day)
    confirmed = signup_request(
        app, "confirmed@example.com", (retention_days + 1) * day, confirmed=True
    )
    recent = signup_request(app, "recent@example.com", (retention_days - 1) * day)
    new = signup_request(app, "new@example.com", timedelta(minutes=5))

    with app.app_context():
        deleted = purge_signup_requests()

    assert deleted == 1
    assert sorted(rows(app, select(SignupRequest.id))) == sorted([confirmed, recent, new])
    assert expired not in rows(app, select(SignupRequest.id))


def test_jobs_are_named_for_what_they_do(app):
    """Operators read which job ran or failed in the log by its name."""
    lock = make_leader_lock(app)
    names = {job.id: job.name for job in build_scheduler(app, lock).get_jobs()}
    assert names["purge_signup_requests"] == "purge_signup_requests"
    assert all("<locals>" not in name for name in names.values()), names


def test_a_woken_job_runs_at_once_and_a_wake_while_it_runs_runs_it_again():
    """Articles arriving wake the immediate-alerts job; one arriving while it runs is not
    lost (APScheduler would skip a second instance)."""
    runs: list[int] = []
    done = threading.Event()

    def alerts() -> None:
        runs.append(len(runs) + 1)
        if len(runs) == 1:
            job.wake()  # an article arrives while the job runs
            # Still running a moment later, when APScheduler would refuse a second instance.
            time.sleep(0.5)
        else:
            done.set()

    job = WakeableJob("alerts", alerts)
    scheduler = BackgroundScheduler(timezone="UTC")
    job.scheduler = scheduler
    scheduler.add_job(job, "interval", seconds=3600, id="alerts")  # first run in an hour
    scheduler.start()
    try:
        job.wake()
        assert done.wait(10), runs
    finally:
        scheduler.shutdown(wait=True)
    assert runs == [1, 2]


def test_a_scheduler_that_cannot_reach_the_database_keeps_waiting_to_lead(app_with, caplog):
    """A database restart must not end the scheduler: it keeps trying to take the lead."""
    from alertsvc.scheduler import wait_to_lead

    with socket.socket() as probe:  # a port with nothing listening: no server there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = app_with(
        SQLALCHEMY_DATABASE_URI=f"postgresql+psycopg://postgres@127.0.0.1:{port}/alertsvc"
    )
    lock = make_leader_lock(unreachable)
    stopping = threading.Event()
    outcome: list[object] = []

    def wait() -> None:
        try:
            outcome.append(wait_to_lead(lock, stopping, 0.2))
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    thread.join(timeout=2)
    assert thread.is_alive(), f"stopped waiting: {outcome}"
    stopping.set()
    thread.join(timeout=10)
    assert outcome == [False]
    assert caplog.text.count("cannot reach the database to take the lead") == 1


@pytest.mark.skipif(
    not os.environ.get("ALERTSVC_TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="the leader lock's connection: PostgreSQL",
)
def test_a_leader_whose_lock_connection_died_takes_the_lead_again(app, app_with):
    """After a database restart the lock went with the leader's connection: the leader
    takes it again at its next check instead of stopping."""
    leader = app_with()
    lock = make_leader_lock(leader)
    scheduler = build_scheduler(leader, lock)
    try:
        assert lock.acquire()
        with leader.app_context():
            pid = lock.connection.execute(text("SELECT pg_backend_pid()")).scalar()
            lock.connection.commit()
        with app.app_context():
            db.session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            db.session.commit()

        scheduler.get_job("check_leadership").func()

        assert lock.still_held()
        assert not make_leader_lock(app).acquire(), "held again, by the leader"
    finally:
        lock.release()


def test_the_immediate_alerts_job_logs_a_sentence_not_a_repr():
    outcome = AlertResult(articles=2, emails=5, failed=1, seconds=0.5)
    assert _describe(outcome) == (
        "2 articles, 5 emails queued, 0 held for the daily digest (cap reached), 1 failed, 0.50 s"
    )
