"""Database restart: PostgreSQL restarts under web, worker and scheduler.

On a PostgreSQL cluster of its own (the shared server is never touched), gunicorn (two
workers), one ``alertsvc worker`` sending through the SES sink and one ``alertsvc
scheduler`` run while readers sign up without pause (each signup queues a confirmation
email) and an API client asks for articles. PostgreSQL is stopped (fast: every client
disconnected, open transactions rolled back), left down, and started again.

Checked:
- during the outage the web answers 503 with the clear page (and the API 503 in JSON),
  never a 500 or a traceback; any other answer is an error;
- each process recovers by itself within 10 s of PostgreSQL being back: the web's first
  successful signup, the worker's first email at the sink, the scheduler holding the leader
  lock again; all three processes still running at the end;
- nothing queued is lost: every signup answered with its redirect has its confirmation
  email at the sink, every outbox row ends sent; no Message-ID reaches the sink twice;
- after the web's first success, no request fails (a dead pooled connection would).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
import psycopg

from bench._support import gunicorn, step
from bench.reliability._outage_support import (
    CSRF,
    LoadThreads,
    Sink,
    postgres_cluster,
    prepare_database,
    service_env,
    ses_sink,
    signup_form,
    start_service,
)
from bench.reliability._service_processes import stop_groups
from bench.reliability.table import Row

NAME = "database restart"
NEEDS_POSTGRESQL = True

RECOVERY_TARGET_S = 10.0
DOWN_S = 5.0
UNAVAILABLE_TITLE = "Sorry, the service is unavailable at the moment"
API_TOKEN = "alertsvc_" + "r" * 43  # well formed, unknown: 401, looked up in the database


@dataclass(frozen=True)
class Plan:
    warm_s: float
    restarts: int
    between_s: float  # from PostgreSQL back to the next stop
    after_s: float  # load after the last restart
    signup_threads: int


SHORT = Plan(warm_s=3, restarts=1, between_s=0, after_s=8, signup_threads=2)
FULL = Plan(warm_s=10, restarts=3, between_s=20, after_s=20, signup_threads=3)


@dataclass(frozen=True)
class Answer:
    started: float
    kind: str  # "page", "signup", "api"
    outcome: str  # "ok", "unavailable" (the clear 503), or what was wrong
    email: str | None = None


class Load(LoadThreads[Answer]):
    """Readers signing up (GET the form, POST it) and an API client, until stopped."""

    def __init__(self, base_url: str, threads: int) -> None:
        super().__init__()
        self.base_url = base_url
        for n in range(threads):
            self.add(self._signups, n)
        self.add(self._api)

    def _signups(self, thread: int) -> None:
        sent = 0
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            while not self.stop.is_set():
                started = time.time()
                try:
                    form = client.get("/")
                except httpx.HTTPError as error:
                    self.keep(Answer(started, "page", f"no answer: {type(error).__name__}"))
                    self.stop.wait(0.1)
                    continue
                found = CSRF.search(form.text) if form.status_code == 200 else None
                outcome = "ok" if found else _unavailable_page(form)
                self.keep(Answer(started, "page", outcome))
                if not found:
                    self.stop.wait(0.1)
                    continue
                sent += 1
                email = f"restart-{thread}-{sent}@example.com"
                started = time.time()
                try:
                    reply = client.post("/", data=signup_form(found.group(1), email))
                    outcome = "ok" if reply.status_code == 303 else _unavailable_page(reply)
                except httpx.HTTPError as error:
                    outcome = f"no answer: {type(error).__name__}"
                self.keep(Answer(started, "signup", outcome, email))
                self.stop.wait(0.05)

    def _api(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            while not self.stop.wait(0.25):
                started = time.time()
                try:
                    reply = client.get(
                        "/api/v1/articles", headers={"Authorization": f"Bearer {API_TOKEN}"}
                    )
                except httpx.HTTPError as error:
                    self.keep(Answer(started, "api", f"no answer: {type(error).__name__}"))
                    continue
                if reply.status_code == 401:
                    outcome = "ok"
                elif (
                    reply.status_code == 503
                    and reply.headers.get("content-type", "").startswith("application/json")
                    and reply.json().get("error") == "Service Unavailable"
                    and "Retry-After" in reply.headers
                ):
                    outcome = "unavailable"
                else:
                    outcome = f"API answered {reply.status_code}"
                self.keep(Answer(started, "api", outcome))


def _unavailable_page(response: httpx.Response) -> str:
    """ "unavailable" for the clear 503 page, else what the answer was instead."""
    body = response.text
    if response.status_code != 503:
        return f"answered {response.status_code}"
    if "Traceback" in body:
        return "503 with a traceback"
    if not response.headers.get("content-type", "").startswith("text/html"):
        return "503 not HTML"
    if UNAVAILABLE_TITLE not in body or "Retry-After" not in response.headers:
        return "503 without the clear page or Retry-After"
    return "unavailable"


def _leader_lock_held(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2, autocommit=True) as connection:
            row = connection.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            ).fetchone()
            return bool(row and row[0])
    except psycopg.Error:
        return False


def _wait_for(condition: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until ``condition()`` held, or None if it did not within ``timeout``."""
    started = time.time()
    while time.time() - started < timeout:
        if condition():
            return time.time() - started
        time.sleep(0.1)
    return None


def run(short: bool) -> Row:
    plan = SHORT if short else FULL
    row = Row(
        scenario=NAME,
        load=f"signups ({plan.signup_threads} readers) + API, web x2, worker, scheduler",
        faults=f"PostgreSQL restarted {plan.restarts}x (fast stop, {DOWN_S:g} s down)",
    )
    with TemporaryDirectory(prefix="alertsvc-restart-") as temp, postgres_cluster() as cluster:
        logs = Path(temp)
        with ses_sink() as sink:
            url = cluster.create_database("alertsvc_reliability_database_restart")
            dsn = url.replace("postgresql+psycopg://", "postgresql://")
            env = service_env(
                url,
                sink,
                SIGNUP_RATE_LIMIT_PER_IP="100000 per minute",
                API_RATE_LIMIT="100000 per minute",
            )
            step("migrating")
            prepare_database(url)
            step("starting web, worker and scheduler")
            services = []
            try:
                services.append(start_service("worker", ["worker"], env, logs))
                services.append(
                    start_service("scheduler", ["scheduler", "--wait-seconds", "1"], env, logs)
                )
                with gunicorn("wsgi:app", env=env, workers=2, ready_timeout=90) as web:
                    if _wait_for(lambda: _leader_lock_held(dsn), 30) is None:
                        row.failures.append("the scheduler never took the lead")
                        return row
                    step(f"web {web.url}, worker and scheduler running; load for {plan.warm_s:g} s")
                    outages: list[tuple[float, float]] = []
                    scheduler_recovery: list[float] = []
                    with Load(web.url, plan.signup_threads) as load:
                        time.sleep(plan.warm_s)
                        for n in range(plan.restarts):
                            if n:
                                time.sleep(plan.between_s)
                            step(f"restart {n + 1}: stopping PostgreSQL (fast)")
                            down = time.time()
                            cluster.stop("fast")
                            time.sleep(DOWN_S)
                            cluster.start()
                            up = time.time()
                            outages.append((down, up))
                            step(f"PostgreSQL back after {up - down:.1f} s")
                            took = _wait_for(lambda: _leader_lock_held(dsn), 30)
                            scheduler_recovery.append(took if took is not None else float("inf"))
                            step(
                                "scheduler leads again after "
                                + (f"{took:.1f} s" if took is not None else "more than 30 s")
                            )
                        time.sleep(max(0.0, plan.after_s - (time.time() - outages[-1][1])))
                    step(f"load stopped: {len(load.answers)} requests")
                    drained = _wait_for(lambda: _all_sent(dsn), 60)
                    step("outbox drained" if drained is not None else "outbox NOT drained in 60 s")
                    alive = {service.name: service.alive() for service in services}
                    alive["web"] = web_alive(web.pid)
                    _measure(row, load.answers, outages, scheduler_recovery, dsn, sink, alive)
                    if row.failures:
                        for service in services:
                            print(f"--- {service.name} log (end):\n{service.output()[-6000:]}")
                        trouble = [
                            line
                            for line in web.log_tail(10**8).splitlines()
                            if "unavailable" in line or "error" in line.lower()
                        ]
                        print("--- web log, its errors (last 60):\n" + "\n".join(trouble[-60:]))
                    step("stopping web, worker and scheduler")
                    for service in services:
                        service.process.terminate()  # while gunicorn stops
                stop_groups([service.process for service in services])
                step("stopped")
            finally:
                stop_groups([service.process for service in services])
    return row


def web_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _all_sent(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2) as connection:
            row = connection.execute(
                "SELECT count(*) FROM outbox WHERE status NOT IN ('sent', 'failed', 'suppressed')"
            ).fetchone()
            return bool(row) and row[0] == 0
    except psycopg.Error:
        return False


def _measure(
    row: Row,
    answers: list[Answer],
    outages: list[tuple[float, float]],
    scheduler_recovery: list[float],
    dsn: str,
    sink: Sink,
    alive: dict[str, bool],
) -> None:
    answers = sorted(answers, key=lambda answer: answer.started)
    arrivals = sink.arrivals()
    bad = [a for a in answers if a.outcome not in ("ok", "unavailable")]
    web_recovery: list[float] = []
    worker_recovery: list[float] = []
    after_recovery_failures = 0
    for n, (down, up) in enumerate(outages):
        # Up to the next restart, less a request's length: one begun as it stops may be
        # answered with the outage's 503.
        end = outages[n + 1][0] - 1.0 if n + 1 < len(outages) else float("inf")
        during = [a for a in answers if down <= a.started < up]
        unavailable = Counter(a.kind for a in during if a.outcome == "unavailable")
        row.require(
            unavailable["page"] + unavailable["signup"] > 0,
            f"restart {n + 1}: no clear 503 page seen during the outage",
        )
        row.require(unavailable["api"] > 0, f"restart {n + 1}: no 503 JSON from the API")
        first_ok = next((a for a in answers if up <= a.started < end and a.outcome == "ok"), None)
        web_s = (first_ok.started - up) if first_ok else float("inf")
        web_recovery.append(web_s)
        if first_ok:
            failed_after = [
                a for a in answers if first_ok.started <= a.started < end and a.outcome != "ok"
            ]
            after_recovery_failures += len(failed_after)
            for a in failed_after[:5]:
                row.notes.append(
                    f"restart {n + 1}: after recovery, {a.kind} at +{a.started - up:.2f} s "
                    f"from PostgreSQL back: {a.outcome}"
                )
        first_arrival = min((at for at, _ in arrivals if up <= at < end), default=None)
        worker_s = (first_arrival - up) if first_arrival is not None else float("inf")
        worker_recovery.append(worker_s)
        row.notes.append(
            f"restart {n + 1}: {unavailable['page'] + unavailable['signup']} clear 503 pages and "
            f"{unavailable['api']} API 503s during the outage; recovered after: web "
            f"{web_s:.1f} s, worker {worker_s:.1f} s (first email at the sink), scheduler "
            f"{scheduler_recovery[n]:.1f} s (leader lock held again)"
        )

    accepted = {a.email for a in answers if a.kind == "signup" and a.outcome == "ok"}
    with psycopg.connect(dsn) as connection:
        rows = connection.execute(
            "SELECT to_address, message_id, status FROM outbox WHERE template = 'confirm'"
        ).fetchall()
    at_sink = Counter(message_id for _, message_id in arrivals)
    delivered = {to for to, sent_id, status in rows if status == "sent" and sent_id in at_sink}
    unsent = sum(1 for _, _, status in rows if status != "sent")
    row.lost = len(accepted - delivered) + sum(
        1 for to, _, status in rows if status != "sent" and to not in accepted
    )
    row.duplicated = sum(count - 1 for count in at_sink.values() if count > 1)
    row.errors = len(bad) + after_recovery_failures
    row.recovery_s = max([*web_recovery, *worker_recovery, *scheduler_recovery])
    outcomes = Counter(a.outcome for a in answers)
    row.notes.append(
        f"{len(answers)} requests: {outcomes['ok']} ok, {outcomes['unavailable']} clear 503s, "
        f"{len(bad)} other; {len(accepted)} signups accepted, {len(delivered)} of their "
        f"confirmation emails at the sink, {unsent} outbox rows unsent"
    )
    if bad:
        row.notes.append(f"other answers: {dict(Counter(a.outcome for a in bad))}")
    row.require(not bad, f"{len(bad)} answers neither served nor the clear 503")
    row.require(
        after_recovery_failures == 0,
        f"{after_recovery_failures} requests failed after the web had recovered",
    )
    for name, value in (
        ("web", max(web_recovery)),
        ("worker", max(worker_recovery)),
        ("scheduler", max(scheduler_recovery)),
    ):
        row.require(value <= RECOVERY_TARGET_S, f"{name} recovered after {value:.1f} s (> 10 s)")
    for name, running in alive.items():
        row.require(running, f"the {name} process is no longer running")
    row.require(row.lost == 0, f"{row.lost} queued emails lost")
    row.require(row.duplicated == 0, f"{row.duplicated} emails sent twice")
    row.require(len(accepted) > 0, "no signup was accepted")
