"""Scenario 2: the leading scheduler gets SIGKILL part way through planning a large digest;
the standby takes over and the run completes, every subscriber queued exactly once.

1. A fresh database with N subscribers (100,000; 5,000 short) due in the daily run of the
   hour that has just ended (``_digest_audience``): the scheduler's sweeper plans that run
   as soon as a scheduler leads, with no clock faked.
2. Two ``alertsvc scheduler`` processes with their default lead-polling interval. The
   scenario holds the leader lock itself until both are waiting, so the standby is
   already running when the leader dies (not starting up), then lets go. Which of the two
   leads is read from ``pg_locks`` (each names itself through ``application_name``).
3. The run's progress is read from the database (its ``subscriber_count``, raised by each
   committed chunk of ledger and outbox rows, ``DIGEST_CHUNK_SIZE`` set to a twentieth of
   the audience so planning has steps to stop between); once about a third is written,
   the leader's process group gets SIGKILL.
4. Takeover: from the kill to the standby holding the leader lock, to its first chunk
   committed (writing resumed), to the run planned.
5. SQL counts: every subscriber of the audience has exactly one digest of the run queued
   and one ledger row (0 twice, 0 skipped, none to anyone outside the audience); the run
   recorded no failed attempt.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from alertsvc.scheduler import ADVISORY_LOCK_KEY
from bench._support import alertsvc_command, step
from bench.reliability._common import scenario_database
from bench.reliability._digest_audience import (
    check_run,
    dsn_of,
    latest_window_end,
    seed_due_audience,
    seed_topics,
)
from bench.reliability._service_processes import kill, service_env, start_alertsvc, stop, tail
from bench.reliability.table import Row

NAME = "scheduler killed"
NEEDS_POSTGRESQL = True

PREFIX = "reader"
WAITING = "another scheduler leads; waiting to take over"
KILL_AT = 0.3  # of the audience written
SCHEDULERS = ("scheduler-a", "scheduler-b")

# The scheduler's leader lock is a bigint advisory lock: pg_locks shows its high 32 bits as
# classid, its low 32 bits as objid, and objsubid 1.
_LEADER_SQL = """
    SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.classid::bigint = %(high)s AND l.objid::bigint = %(low)s
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
_LOCK_KEYS = {"high": ADVISORY_LOCK_KEY >> 32, "low": ADVISORY_LOCK_KEY & 0xFFFFFFFF}


def _leader(connection: psycopg.Connection) -> str | None:
    found = connection.execute(_LEADER_SQL, _LOCK_KEYS).fetchone()
    return found[0] if found else None


def _progress(connection: psycopg.Connection, window_end: object) -> tuple[int, str | None]:
    """(subscribers written, status) of the daily run ending ``window_end``."""
    found = connection.execute(
        "SELECT subscriber_count, status FROM digest_runs"
        " WHERE frequency = 'daily' AND window_end = %s",
        (window_end,),
    ).fetchone()
    return (int(found[0]), found[1]) if found else (0, None)


def run(short: bool) -> Row:
    subscribers = 5_000 if short else 100_000
    chunk = max(subscribers // 20, 1)
    row = Row(
        scenario=NAME,
        load=f"{subscribers:,}-subscriber daily digest, 2 schedulers",
        faults="SIGKILL to the leading scheduler part way through planning",
    )
    processes = {}
    with scenario_database("scheduler_killed") as url, tempfile.TemporaryDirectory() as tmp:
        logs = {name: Path(tmp) / f"{name}.log" for name in SCHEDULERS}
        dsn = dsn_of(url)
        try:
            alertsvc_command(["db", "upgrade"], service_env(url))
            window_end = latest_window_end()
            step(f"seeding {subscribers:,} subscribers due in the run ending {window_end:%H:%M}")
            with psycopg.connect(dsn, autocommit=True) as connection:
                seed_topics(connection, window_end)
                seed_due_audience(connection, subscribers, window_end, PREFIX)

            with psycopg.connect(dsn, autocommit=True, application_name="scenario") as watch:
                # Hold the leader lock until both schedulers are up and waiting for it.
                watch.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
                for name in SCHEDULERS:
                    named = make_url(url).update_query_dict({"application_name": name})
                    env = service_env(
                        named.render_as_string(hide_password=False),
                        DIGEST_CHUNK_SIZE=str(chunk),
                    )
                    processes[name] = start_alertsvc(["scheduler"], env, logs[name])
                step("two schedulers started; waiting until both wait for the lead")
                deadline = time.monotonic() + 45
                while not all(WAITING in tail(logs[n], 100_000) for n in SCHEDULERS):
                    exited = [n for n, p in processes.items() if p.poll() is not None]
                    if exited or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"schedulers did not start ({exited or 'timed out'}):\n"
                            + "".join(tail(logs[n]) for n in SCHEDULERS)
                        )
                    time.sleep(0.1)
                watch.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
                step("lock released: the first scheduler to ask leads and plans the run")

                leader = None
                deadline = time.monotonic() + 30
                while leader is None and time.monotonic() < deadline:
                    leader = _leader(watch)
                    time.sleep(0.05)
                if leader is None:
                    raise RuntimeError("no scheduler took the lead within 30 s")
                standby = next(n for n in SCHEDULERS if n != leader)
                step(f"{leader} leads, {standby} waits")

                written, status = 0, None
                deadline = time.monotonic() + (60 if short else 180)
                while written < KILL_AT * subscribers and status != "planned":
                    if time.monotonic() > deadline or processes[leader].poll() is not None:
                        raise RuntimeError(
                            f"the leader did not get a third of the way ({written} written):\n"
                            + tail(logs[leader])
                        )
                    time.sleep(0.02)
                    written, status = _progress(watch, window_end)
                if status == "planned":
                    raise RuntimeError("the leader finished planning before it could be killed")
                kill(processes[leader])
                killed_at = time.monotonic()
                written_at_kill, _ = _progress(watch, window_end)
                step(
                    f"SIGKILL to {leader} with {written_at_kill:,} of {subscribers:,}"
                    " subscribers written"
                )

                took_lock = resumed = finished = None
                deadline = killed_at + (45 if short else 120)
                while finished is None and time.monotonic() < deadline:
                    now = time.monotonic() - killed_at
                    if took_lock is None and _leader(watch) == standby:
                        took_lock = now
                        step(f"{standby} holds the leader lock {took_lock:.1f} s after the kill")
                    written, status = _progress(watch, window_end)
                    if resumed is None and written > written_at_kill:
                        resumed = now
                        step(f"{standby} resumed writing {resumed:.1f} s after the kill")
                    if status == "planned":
                        finished = now
                        step(f"run planned {finished:.1f} s after the kill")
                    if processes[standby].poll() is not None:
                        break
                    time.sleep(0.05)

                with psycopg.connect(dsn, autocommit=True) as connection:
                    check = check_run(connection, window_end, PREFIX)
                    failed_attempts = connection.execute(
                        "SELECT coalesce(sum(attempts), 0) FROM digest_runs"
                    ).fetchone()[0]
            step(
                f"audience {check.audience:,}: {check.emails:,} digests queued,"
                f" {check.ledger:,} ledger rows, {check.twice} twice, {check.skipped} skipped,"
                f" {check.strangers} outside the audience; run {check.status}"
            )
            row.lost = check.skipped
            row.duplicated = check.twice
            row.errors = int(failed_attempts)
            row.recovery_s = resumed
            row.notes.append(
                f"killed with {written_at_kill:,}/{subscribers:,} written"
                f" (chunks of {chunk:,}); takeover: standby holds the lock after "
                + (f"{took_lock:.1f} s" if took_lock is not None else "never")
                + ", resumes writing after "
                + (f"{resumed:.1f} s" if resumed is not None else "never")
                + ", run planned after "
                + (f"{finished:.1f} s" if finished is not None else "never")
                + " (standby polls for the lead every 5 s, the default)"
            )
            row.require(took_lock is not None, "the standby never took the leader lock")
            row.require(finished is not None, "the run was not planned after the kill")
            row.require(check.status == "planned", f"run status {check.status}")
            row.require(check.twice == 0, f"{check.twice} subscribers queued twice")
            row.require(check.skipped == 0, f"{check.skipped} subscribers skipped")
            row.require(check.strangers == 0, f"{check.strangers} digests outside the audience")
            row.require(
                check.ledger == check.audience == subscribers,
                f"ledger {check.ledger}, audience {check.audience}, seeded {subscribers}",
            )
            row.require(failed_attempts == 0, f"{failed_attempts} failed planning attempts")
            if row.failures:
                for name in SCHEDULERS:
                    print(f"--- end of {name}'s log:\n{tail(logs[name])}", flush=True)
        finally:
            for process in processes.values():
                stop(process)
    return row
