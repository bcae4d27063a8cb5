"""SES throttling: workers send through an SES that throttles a fifth of the calls and is
slow (2 s) for a tenth, under a fleet-wide ``SEND_RATE`` counted in Redis.

What it checks (issue 15, scenario 4): every email is delivered (0 lost, 0 sent twice),
and the fleet's rate is never exceeded. The rate is kept when a sending thread is given its
turn: a moving window in Redis, on Redis's clock, which holds the time of each of the last
``SEND_RATE`` turns. The scenario reads that list every 0.2 s, so it sees every turn the
fleet was given, and checks that no window of one second, wherever it starts, holds more
than ``SEND_RATE + SEND_BURST`` of them, and that the sink received no more calls than
turns were given (no call went without one). Throttled calls count: they are sends the
fleet made.

The sink's own arrival times are printed too: the busiest second there, and the busiest
``1 - LAG_ALLOWANCE_S`` seconds (tests/delivery/test_rate.py's allowance). A call reaches
the sink after its turn, once the message is signed and sent, and on a machine whose load
average is near 10 a thread can wait hundreds of milliseconds for a core in between, so
calls given their turns within the rate bunch up at the sink: 116 to 127 calls in a second
at 100/s here. SES measures at its end, so a fleet on such machines should keep
``SEND_RATE`` a little under ``MaxSendRate``.

Redis is the shared one, on a database number of its own (11) and under a key prefix of
this run's own, so that nothing another scenario or test counts is shared.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

import redis

from alertsvc.delivery.rate import rate_items
from bench._support import step
from bench.reliability._common import busiest_window
from bench.reliability._sending import (
    WorkerProcess,
    alertsvc_env,
    queue_emails,
    reckon,
    sending_scenario,
    start_worker,
    stop_workers,
    wait_until_sent,
    worker_logs,
)
from bench.reliability.table import Row

NAME = "SES throttling"
NEEDS_POSTGRESQL = True

WORKERS = 3
CONCURRENCY = 16  # enough threads that the rate, not slow calls, is what holds sending back
THROTTLED = 0.20
SLOW = 0.10
SLOW_SECONDS = 2.0
REDIS = os.environ.get("RELIABILITY_REDIS_URL", "redis://127.0.0.1:6379/11")
# Throttled emails come back after 0.5 to 4 s (full jitter), not SES's minutes: the
# scenario is bounded, and what it shows (every one delivered, within the rate) is the same.
BACKOFF_BASE_SECONDS = 1
BACKOFF_MAX_SECONDS = 4
# How much more one call may lag its turn than another before it reaches the sink: the
# same allowance as tests/delivery/test_rate.py's (0.1 s was exceeded here once, with the
# machine's load average near 10: 106 calls in 0.9 s, against 116 in the whole second).
LAG_ALLOWANCE_S = 0.2
RECORD_EVERY_S = 0.2


class TurnRecorder:
    """Every turn the fleet is given, read from the moving window's list in Redis (newest
    first, the last ``amount`` kept) often enough that none drops off unseen."""

    def __init__(self, redis_url: str, key_prefix: str, rate: float, burst: float) -> None:
        # The main window's key as SendRate names it (limits' key and storage prefix); every
        # turn goes into every window, and this one keeps at least a second of them.
        self.key = "LIMITS:" + rate_items(rate, burst)[0].key_for(key_prefix, "send")
        self.client = redis.Redis.from_url(redis_url, socket_timeout=5)
        self.turns: set[bytes] = set()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._record, daemon=True)

    def __enter__(self) -> TurnRecorder:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)
        self.client.close()

    def _record(self) -> None:
        while True:
            with contextlib.suppress(redis.RedisError):
                self.turns.update(self.client.lrange(self.key, 0, -1))
            if self.stopped.wait(RECORD_EVERY_S):
                with contextlib.suppress(redis.RedisError):
                    self.turns.update(self.client.lrange(self.key, 0, -1))
                return

    def times(self) -> list[float]:
        return sorted(float(turn) for turn in self.turns)


def run(short: bool) -> Row:
    emails = 300 if short else 6_000
    rate = 50 if short else 100
    burst = 0
    limit = rate + burst
    row = Row(
        scenario=NAME,
        load=f"{emails:,} emails, {WORKERS} workers, SEND_RATE {rate}/s",
        faults=f"{THROTTLED:.0%} of calls throttled (429), {SLOW:.0%} slow ({SLOW_SECONDS:g} s)",
    )
    workers: list[WorkerProcess] = []
    with sending_scenario(
        "ses_throttling",
        "reliability-throttling-",
        throttle=THROTTLED,
        slow=SLOW,
        slow_seconds=SLOW_SECONDS,
    ) as (database_url, sink, logs):
        prefix = f"reliability-throttling-{os.getpid()}-{time.time_ns()}"
        env = alertsvc_env(
            database_url,
            sink,
            REDIS_URL=REDIS,
            REDIS_KEY_PREFIX=prefix,
            SEND_RATE=rate,
            SEND_BURST=burst,
            WORKER_CONCURRENCY=CONCURRENCY,
            WORKER_POLL_SECONDS=1,
            WORKER_BACKOFF_BASE_SECONDS=BACKOFF_BASE_SECONDS,
            WORKER_BACKOFF_MAX_SECONDS=BACKOFF_MAX_SECONDS,
        )
        try:
            with TurnRecorder(REDIS, prefix, rate, burst) as recorder:
                workers = [start_worker(env, logs / f"worker{n}.log") for n in range(WORKERS)]
                queue_emails(database_url, emails)
                step(f"SES throttling: {emails:,} emails queued, {WORKERS} workers at {rate}/s")
                drained = wait_until_sent(
                    database_url, emails / rate + (60 if short else 120), "SES throttling"
                )
                exited = [worker.pid for worker in workers if worker.process.poll() is not None]
        finally:
            stop_workers(workers)
        texts = worker_logs(logs)
        calls = sink.calls()
        arrivals = sink.arrivals()
        reckoning = reckon(database_url, arrivals)

    throttled = sum(1 for _, _, outcome in calls if outcome == "throttled")
    slow = sum(1 for _, _, outcome in calls if outcome == "slow")
    turns = recorder.times()
    turn_peak, _ = busiest_window(turns)
    call_times = [at for at, _, _ in calls]
    peak, _ = busiest_window(call_times, 1.0 - LAG_ALLOWANCE_S)
    second, second_at = busiest_window(call_times)
    first = min(at for at, _, _ in calls) if calls else 0.0
    tracebacks = sum(text.count("Traceback") for text in texts)
    row.lost = reckoning.lost
    row.duplicated = reckoning.duplicated
    row.errors = len(exited) + reckoning.unknown + tracebacks
    row.notes += [
        f"{len(calls):,} SendEmail calls: {throttled} throttled, {slow} slow; "
        f"outbox by status: {reckoning.by_status}",
        f"busiest second of the fleet's turns (Redis's clock): {turn_peak} against "
        f"SEND_RATE {rate}"
        + (f" + SEND_BURST {burst}" if burst else "")
        + f"; {len(turns):,} turns given for {len(calls):,} calls",
        f"at the sink, where calls arrive after their turn: busiest second {second} calls "
        f"({second_at - first:.1f} s into sending), busiest {1 - LAG_ALLOWANCE_S:g} s {peak}; "
        + (f"all sent in {drained - first:.1f} s" if drained else "not all sent"),
    ]
    if exited or tracebacks:
        row.notes.append(f"workers that exited by themselves: {exited}; tracebacks: {tracebacks}")
    row.require(drained is not None, "the outbox was not drained within the run")
    row.require(throttled > 0 and slow > 0, "the sink neither throttled nor slowed any call")
    row.require(
        reckoning.lost == 0 and reckoning.rows == emails,
        f"{reckoning.lost} of {reckoning.rows:,} emails lost (not sent, or never at the sink)",
    )
    row.require(reckoning.duplicated == 0, f"{reckoning.duplicated} emails sent twice")
    row.require(
        turn_peak <= limit, f"{turn_peak} turns in one second, more than the fleet's {limit}"
    )
    row.require(
        len(calls) <= len(turns),
        f"{len(calls):,} calls at the sink but only {len(turns):,} turns given",
    )
    row.require(
        not exited and not tracebacks and reckoning.unknown == 0,
        f"{len(exited)} workers exited, {tracebacks} tracebacks, "
        f"{reckoning.unknown} unknown Message-IDs",
    )
    return row
