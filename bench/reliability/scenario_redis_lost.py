"""Redis lost: Redis stops while workers send within the fleet's rate and readers sign up.

Against a redis-server of its own (the shared one is never touched), workers drain a
queue through the SES sink with a fleet-wide ``SEND_RATE`` counted in Redis and
``SEND_RATE_FALLBACK_WORKERS`` set to a fleet larger than the one running (a conservative
share), while readers sign up through gunicorn, whose rate limits are counted in the same
Redis. Redis is stopped, left down, and started again (empty, as after a restart without
persistence).

Checked:
- the sink never sees more than the rate in any window (arrivals are checked over windows
  ``SLACK`` shorter than a second, as tests/delivery/test_rate.py explains: an arrival lags
  its permit by the SES call), nor, while Redis is down, more than the workers' shares;
- sending goes on while Redis is down; every signup succeeds throughout (0 errors);
- both go back to the shared count once Redis is back: the send rate's and the signup
  limits' keys reappear in Redis (the recovery time is the later of the two), and the
  sink's rate climbs back to the fleet's rate;
- no Message-ID reaches the sink twice.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx

from bench._support import gunicorn, step
from bench.reliability._common import busiest_window, scenario_database
from bench.reliability._outage_support import (
    CSRF,
    LoadThreads,
    RedisServer,
    Service,
    connected_to,
    prepare_database,
    redis_server,
    service_env,
    ses_sink,
    signup_form,
    start_service,
)
from bench.reliability._service_processes import stop_groups
from bench.reliability.table import Row

NAME = "Redis lost"
NEEDS_POSTGRESQL = True

SLACK = 0.2
FALLBACK_WORKERS = 4  # more than run: the conservative share
WORKER_START_S = 60.0


@dataclass(frozen=True)
class Plan:
    rate: int
    workers: int
    emails: int
    warm_s: float
    down_s: float
    after_s: float
    signup_threads: int
    web_workers: int


SHORT = Plan(
    rate=40, workers=2, emails=1200, warm_s=4, down_s=10, after_s=8, signup_threads=2, web_workers=1
)
FULL = Plan(
    rate=60,
    workers=3,
    emails=4000,
    warm_s=15,
    down_s=10,
    after_s=25,
    signup_threads=3,
    web_workers=2,
)


class Signups(LoadThreads[tuple[float, str, int | str]]):
    """Readers signing up (GET the form, POST it), each answer kept, until stopped;
    ``answers`` are (started, what, status)."""

    def __init__(self, base_url: str, threads: int) -> None:
        super().__init__()
        self.base_url = base_url
        for n in range(threads):
            self.add(self._run, n)

    def _run(self, thread: int) -> None:
        sent = 0
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            while not self.stop.is_set():
                started = time.time()
                try:
                    form = client.get("/")
                    found = CSRF.search(form.text) if form.status_code == 200 else None
                    self._keep(started, "form", form.status_code if found else "no form")
                    if not found:
                        self.stop.wait(0.1)
                        continue
                    sent += 1
                    started = time.time()
                    email = f"redis-{thread}-{sent}@example.com"
                    reply = client.post("/", data=signup_form(found.group(1), email))
                    self._keep(started, "signup", reply.status_code)
                except httpx.HTTPError as error:
                    self._keep(started, "request", type(error).__name__)
                self.stop.wait(0.1)

    def _keep(self, started: float, what: str, status: int | str) -> None:
        self.keep((started, what, status))

    def failures(self) -> list[tuple[float, str, int | str]]:
        return [
            (started, what, status)
            for started, what, status in self.answers
            if not (what == "form" and status == 200) and not (what == "signup" and status == 303)
        ]


def _keys(redis: RedisServer) -> list[str]:
    listed = redis.command("--scan")
    return listed.split() if listed else []


def _keys_back(redis: RedisServer, up: float, timeout: float) -> tuple[float | None, float | None]:
    """Seconds from ``up`` until the send rate's key, and a signup limit's key, are in Redis
    again (None: not within ``timeout``)."""
    send_back = limits_back = None
    while time.time() - up < timeout and (send_back is None or limits_back is None):
        keys = _keys(redis)
        if send_back is None and any("send" in key for key in keys):
            send_back = time.time() - up
        if limits_back is None and any("signup" in key for key in keys):
            limits_back = time.time() - up
        time.sleep(0.1)
    return send_back, limits_back


def _wait_for_redis_clients(workers: list[Service], port: int, most_s: float) -> float:
    """Wait until every worker holds a connection to Redis (or ``most_s`` has passed); the
    seconds waited. A worker refuses to start without the Redis its rate is counted in, so
    one still starting when Redis stops (on a busy machine, seconds after the others) would
    exit: the scenario is about Redis lost by a running fleet."""
    started = time.monotonic()
    while time.monotonic() - started < most_s:
        if all(connected_to(worker.process.pid, port) for worker in workers):
            break
        time.sleep(0.1)
    return time.monotonic() - started


def run(short: bool) -> Row:
    plan = SHORT if short else FULL
    row = Row(
        scenario=NAME,
        load=(
            f"{plan.workers} workers at SEND_RATE={plan.rate}/s, "
            f"{plan.signup_threads} readers signing up (web x{plan.web_workers})"
        ),
        faults=f"Redis stopped for {plan.down_s:g} s",
    )
    with (
        TemporaryDirectory(prefix="alertsvc-redis-lost-") as temp,
        scenario_database("redis_lost") as url,
        redis_server() as redis,
        ses_sink() as sink,
    ):
        logs = Path(temp)
        env = service_env(
            url,
            sink,
            REDIS_URL=redis.url,
            SEND_RATE=str(plan.rate),
            SEND_RATE_FALLBACK_WORKERS=str(FALLBACK_WORKERS),
            SIGNUP_RATE_LIMIT_PER_IP="100000 per minute",
        )
        step(f"migrating, queueing {plan.emails} emails")
        prepare_database(url, emails=plan.emails)
        step("starting web and workers")
        workers = [start_service(f"worker{n}", ["worker"], env, logs) for n in range(plan.workers)]
        try:
            with gunicorn("wsgi:app", env=env, workers=plan.web_workers, ready_timeout=90) as web:
                step(f"sending and signups for {plan.warm_s:g} s")
                with Signups(web.url, plan.signup_threads) as signups:
                    time.sleep(plan.warm_s)
                    waited = _wait_for_redis_clients(workers, redis.port, WORKER_START_S)
                    step(f"every worker connected to Redis ({waited:.1f} s more)")
                    before = _keys(redis)
                    step(
                        f"Redis holds {sum('send' in k for k in before)} send rate key(s) and "
                        f"{sum('signup' in k for k in before)} signup limit keys"
                    )
                    down = time.time()
                    redis.stop()
                    step(f"Redis stopped; down for {plan.down_s:g} s")
                    time.sleep(plan.down_s)
                    redis.start()
                    up = time.time()
                    step("Redis started again (empty)")
                    send_back, limits_back = _keys_back(redis, up, 30)
                    step(
                        f"counted in Redis again: send rate after {_seconds(send_back)}, "
                        f"signup limits after {_seconds(limits_back)}"
                    )
                    time.sleep(max(0.0, plan.after_s - (time.time() - up)))
                end = time.time()
                step(f"stopping: {len(signups.answers)} requests")
                for worker in workers:
                    worker.process.terminate()
                arrivals = sink.arrivals()
                alive = all(worker.alive() for worker in workers)
            stop_groups([worker.process for worker in workers])
        finally:
            stop_groups([worker.process for worker in workers])
        _measure(row, plan, arrivals, signups, down, up, end, send_back, limits_back, alive)
        if row.failures:
            for worker in workers:
                print(f"--- {worker.name} log (end):\n{worker.output()[-4000:]}")
    return row


def _measure(
    row: Row,
    plan: Plan,
    arrivals: list[tuple[float, str]],
    signups: Signups,
    down: float,
    up: float,
    end: float,
    send_back: float | None,
    limits_back: float | None,
    alive: bool,
) -> None:
    times = sorted(at for at, _ in arrivals)
    outage = [at for at in times if down <= at < up]
    share = plan.workers * plan.rate / FALLBACK_WORKERS
    busiest, busiest_from = busiest_window(times, 1.0 - SLACK)
    busiest_1s, _ = busiest_window(times, 1.0)
    busiest_outage, _ = busiest_window(outage, 1.0 - SLACK)
    busiest_outage_1s, _ = busiest_window(outage, 1.0)
    busiest_at = busiest_from - down
    late = [at for at in times if end - 5 <= at < end]
    before = [at for at in times if down - 5 <= at < down]
    failures = signups.failures()
    during = [a for a in signups.answers if down <= a[0] < up and a[1] == "signup"]

    row.duplicated = sum(n - 1 for n in Counter(mid for _, mid in arrivals).values() if n > 1)
    row.errors = len(failures)
    backs = [value for value in (send_back, limits_back) if value is not None]
    row.recovery_s = max(backs) if len(backs) == 2 else None
    row.notes.append(
        f"sink: {len(times)} emails; busiest {1 - SLACK:g} s window {busiest} "
        f"(rate {plan.rate}) at {busiest_at:+.1f} s from Redis stopping, busiest 1 s "
        f"window {busiest_1s}; {len(before) / 5:.0f}/s before "
        f"the outage, {len(outage) / (up - down):.1f}/s while Redis was down (busiest "
        f"{1 - SLACK:g} s: {busiest_outage}, 1 s: {busiest_outage_1s}; the workers' shares "
        f"{share:g}/s), "
        f"{len(late) / 5:.0f}/s at the end"
    )
    row.notes.append(
        f"signups: {len(signups.answers)} requests, {len(failures)} failed, {len(during)} "
        f"signups while Redis was down; shared again after: send rate "
        f"{_seconds(send_back)}, signup limits {_seconds(limits_back)}"
    )
    if failures:
        row.notes.append(f"failed requests: {dict(Counter(str(f[2]) for f in failures[:50]))}")
    row.require(busiest <= plan.rate, f"{busiest} emails in {1 - SLACK:g} s > {plan.rate}")
    row.require(
        busiest_outage <= share, f"{busiest_outage} emails in a window while alone > {share:g}"
    )
    row.require(len(outage) > 0, "nothing was sent while Redis was down")
    row.require(not failures, f"{len(failures)} signup requests failed")
    row.require(len(during) > 0, "no signup was made while Redis was down")
    row.require(send_back is not None, "the workers never counted in Redis again")
    row.require(limits_back is not None, "the signup limits never counted in Redis again")
    row.require(
        len(late) / 5 >= 0.7 * plan.rate,
        f"{len(late) / 5:.0f}/s at the end: not back to the fleet's rate {plan.rate}/s",
    )
    row.require(row.duplicated == 0, f"{row.duplicated} emails sent twice")
    row.require(alive, "a worker stopped")


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"
