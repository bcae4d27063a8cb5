"""Workers killed: three ``alertsvc worker`` processes drain the outbox into the SES sink
while a random one of them gets SIGKILL every 2 s and is started again.

What it checks (issue 15, scenario 1): every email reaches the sink (0 lost); the
Message-IDs the sink saw more than once are never more than the emails in flight in the
workers that were killed; and a short lease (``WORKER_LEASE_SECONDS``) lets the survivors
take the dead workers' rows over within the run.

The victim is drawn at random among the workers that are up (their log says they listen
for the outbox); only when none is yet, among all. On a busy machine a worker takes
seconds to start, and a kill every 2 s drawn from all three would mostly kill workers that
had not started, which proves nothing about the emails in flight.

In flight at a kill: the rows the dead worker had claimed and not yet recorded. Rows carry
no worker's name, only a lease (``status='sending'``, ``lease_expires_at``), so they are
found by what a dead worker cannot do: a live worker's heartbeat moves its batch's lease
forward every third of the lease, while a dead one's stays where it was. Right after each
kill the scenario notes every row in ``sending`` and its lease; a second before each such
lease runs out it looks again, and the rows still ``sending`` under that same, never
extended lease belonged to a dead worker. (Each batch gets a lease of its own, to the
microsecond; a batch is counted once, against the first kill that saw it. The total is
exact; the count against each kill is, unless a heartbeat came late.)
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from bench._support import step
from bench.reliability._sending import (
    WorkerProcess,
    alertsvc_env,
    kill_worker,
    libpq,
    queue_emails,
    reckon,
    sending_scenario,
    start_worker,
    stop_workers,
    wait_until_sent,
    worker_logs,
)
from bench.reliability.table import Row

NAME = "workers killed"
NEEDS_POSTGRESQL = True

WORKERS = 3
KILL_EVERY_S = 2.0
# Short enough that a dead worker's rows are taken over within the run. The heartbeat
# extends a live batch's lease every third of it (1.7 s): shorter than the time between
# kills, so that a batch seen at one kill and frozen at the next one's was the second
# victim's only if that victim's heartbeat was late.
LEASE_SECONDS = 5
POLL_SECONDS = 1
# Look at a lease this long before it runs out: live leases are always at least two
# thirds of the lease (3.3 s) ahead, and no one may take a row over until it has run out.
CHECK_BEFORE_S = 1.0
LEASE_LOST = "lease ran out while it was being sent"
READY = "listening for alertsvc_outbox"


@dataclass
class Kill:
    at: float  # epoch seconds
    worker: int
    pid: int
    up: bool  # False: it had not started listening yet (every worker was still starting)
    in_flight: list[int] = field(default_factory=list)  # row ids


@dataclass
class Batch:
    """Rows seen in ``sending`` under one lease, first at ``kill``."""

    kill: int
    lease: datetime
    ids: set[int]
    checked: bool = False


def sending_rows(database_url: str) -> list[tuple[int, datetime]]:
    with psycopg.connect(libpq(database_url), autocommit=True) as connection:
        return connection.execute(
            "SELECT id, lease_expires_at FROM outbox WHERE status = 'sending'"
        ).fetchall()


def still_leased(database_url: str, batch: Batch) -> list[int]:
    """The batch's rows still ``sending`` under the very lease they had at the kill."""
    with psycopg.connect(libpq(database_url), autocommit=True) as connection:
        return [
            row_id
            for (row_id,) in connection.execute(
                "SELECT id FROM outbox WHERE status = 'sending' AND lease_expires_at = %s"
                " AND id = ANY(%s)",
                (batch.lease, sorted(batch.ids)),
            )
        ]


def sent_at(database_url: str, ids: list[int]) -> dict[int, float]:
    with psycopg.connect(libpq(database_url), autocommit=True) as connection:
        return {
            row_id: when.timestamp()
            for row_id, when in connection.execute(
                "SELECT id, sent_at FROM outbox WHERE id = ANY(%s) AND sent_at IS NOT NULL",
                (ids,),
            )
        }


def run(short: bool) -> Row:
    emails = 1_500 if short else 10_000
    fault_s = 8.0 if short else 30.0
    kills_planned = int(fault_s / KILL_EVERY_S)
    # Each worker's own rate (no Redis: counted per process), so that the drain lasts as
    # long as the kills do instead of being over before the second one.
    per_worker_rate = math.ceil(emails / (WORKERS * fault_s))
    row = Row(
        scenario=NAME,
        load=f"{emails:,} emails, {WORKERS} workers",
        faults=f"SIGKILL a worker every {KILL_EVERY_S:g} s for {fault_s:g} s",
    )
    chooser = random.Random(15)
    kills: list[Kill] = []
    batches: dict[datetime, Batch] = {}
    errors: list[str] = []
    late_checks = 0
    workers: list[WorkerProcess] = []
    with sending_scenario("workers_killed", "reliability-workers-") as (database_url, sink, logs):
        env = alertsvc_env(
            database_url,
            sink,
            WORKER_LEASE_SECONDS=LEASE_SECONDS,
            WORKER_POLL_SECONDS=POLL_SECONDS,
            SEND_RATE=per_worker_rate,
        )
        starts = 0

        def start(index: int) -> WorkerProcess:
            nonlocal starts
            starts += 1
            return start_worker(env, logs / f"worker{index}.{starts}.log")

        def check_batches(now: float) -> None:
            nonlocal late_checks
            for batch in batches.values():
                if batch.checked or now < batch.lease.timestamp() - CHECK_BEFORE_S:
                    continue
                batch.checked = True
                if time.time() >= batch.lease.timestamp():
                    late_checks += 1
                kills[batch.kill].in_flight += still_leased(database_url, batch)

        try:
            # Started before the emails are queued: their start-up (imports, boto3) overlaps
            # the queueing, and they find the rows at their next poll.
            workers = [start(n) for n in range(WORKERS)]
            step(f"workers killed: {WORKERS} workers started, each at most {per_worker_rate}/s")
            queue_emails(database_url, emails)
            step(f"workers killed: {emails:,} emails queued")
            deadline = time.monotonic() + 60
            while sink.stats()["count"] == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            began = time.time()
            next_kill = began + KILL_EVERY_S
            while len(kills) < kills_planned or any(not b.checked for b in batches.values()):
                now = time.time()
                check_batches(now)
                for index, worker in enumerate(workers):
                    if worker.process.poll() is not None:
                        errors.append(f"worker pid {worker.pid} exited by itself")
                        workers[index] = start(index)
                if len(kills) < kills_planned and now >= next_kill:
                    up = [n for n, worker in enumerate(workers) if READY in worker.text()]
                    victim = chooser.choice(up or list(range(WORKERS)))
                    dead = workers[victim]
                    kill_worker(dead)
                    kills.append(Kill(at=time.time(), worker=victim, pid=dead.pid, up=victim in up))
                    workers[victim] = start(victim)
                    for row_id, lease in sending_rows(database_url):
                        batches.setdefault(lease, Batch(len(kills) - 1, lease, set()))
                        if batches[lease].kill == len(kills) - 1:
                            batches[lease].ids.add(row_id)
                    step(
                        f"workers killed: kill {len(kills)}: worker {victim} (pid {dead.pid}); "
                        f"{sink.stats()['count']:,} accepted so far"
                    )
                    next_kill += KILL_EVERY_S
                if time.time() - began > fault_s + 3 * LEASE_SECONDS + 30:
                    errors.append("the kill loop ran past its time")
                    break
                time.sleep(0.02)
            drained = wait_until_sent(database_url, 120 if short else 300, "workers killed")
        finally:
            stop_workers(workers)
        texts = worker_logs(logs)
        arrivals = sink.arrivals()
        reckoning = reckon(database_url, arrivals)
        in_flight_ids = sorted({row_id for kill in kills for row_id in kill.in_flight})
        sent = sent_at(database_url, in_flight_ids) if in_flight_ids else {}

    in_flight = [len(kill.in_flight) for kill in kills]
    recovery = [
        max(sent.get(row_id, math.inf) for row_id in kill.in_flight) - kill.at
        for kill in kills
        if kill.in_flight
    ]
    leases_lost = sum(text.count(LEASE_LOST) for text in texts)
    tracebacks = sum(text.count("Traceback") for text in texts)
    times = [at for at, _ in arrivals]
    row.lost = reckoning.lost
    row.duplicated = reckoning.duplicated
    row.errors = (
        len(errors) + reckoning.unknown + reckoning.by_status.get("failed", 0) + late_checks
    )
    row.recovery_s = max(recovery) if recovery else None
    row.notes += [
        f"{len(kills)} kills, in flight in the killed worker at each: "
        f"{', '.join(map(str, in_flight))} (total {sum(in_flight)}); "
        f"{reckoning.duplicated} Message-IDs at the sink twice or more; "
        f"{sum(not kill.up for kill in kills)} kills found every worker still starting",
        f"rows taken over after a lease ran out: {reckoning.retakes} (claims beyond the "
        f"first); outbox by status: {reckoning.by_status}",
        f"lease {LEASE_SECONDS} s, poll {POLL_SECONDS} s, {per_worker_rate}/s per worker; "
        f"first to last arrival {max(times) - min(times):.1f} s"
        + (f"; all sent {drained - kills[-1].at:.1f} s after the last kill" if drained else "")
        + (
            f"; a dead worker's rows all re-sent within {max(recovery):.1f} s of its kill"
            if recovery
            else ""
        ),
    ]
    if errors or late_checks or tracebacks:
        row.notes.append(
            f"errors: {'; '.join(errors) or 'none'}; in-flight checks too late: {late_checks}; "
            f"tracebacks in worker logs: {tracebacks}"
        )
    row.require(len(kills) == kills_planned, f"{len(kills)} of {kills_planned} kills made")
    row.require(sum(in_flight) > 0, "no kill found a worker with emails in flight")
    row.require(drained is not None, "the outbox was not drained within the run")
    row.require(
        reckoning.lost == 0 and reckoning.rows == emails,
        f"{reckoning.lost} of {reckoning.rows:,} emails lost (not sent, or never at the sink)",
    )
    row.require(
        reckoning.duplicated <= sum(in_flight),
        f"{reckoning.duplicated} duplicates, more than the {sum(in_flight)} emails in flight "
        "in the killed workers",
    )
    row.require(
        leases_lost == 0,
        f"{leases_lost} leases of live workers ran out while they sent (the heartbeat missed)",
    )
    row.require(not errors and reckoning.unknown == 0, "errors: " + "; ".join(errors))
    row.require(late_checks == 0, f"{late_checks} in-flight checks came after the lease ran out")
    return row
