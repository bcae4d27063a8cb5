"""Signup POSTs per second and p50/p99 latency under gunicorn on PostgreSQL, beside a floor.

    uv run python bench/signup.py [--connections N] [--duration S] [--database-url URL]

1. Creates a fresh database (``--database-url`` or ``ALERTSVC_BENCH_SIGNUP_DATABASE_URL``),
   applies the real migrations (``alertsvc db upgrade``) and seeds the demo topics.
2. Serves ``wsgi:app`` with ``gunicorn -w 2`` (production settings, rate limits raised so they
   never trip), GETs ``/`` once for a session cookie and CSRF token (CSRF stays on), then
   drives signup POSTs with wrk: every request a new address, two topics, daily, a timezone.
   Checks that every response was 2xx and that each request sent left one subscriber, one
   signup request and one outbox row.
3. In the same run, the floor: ``bench/_floor_app.py``, a bare Flask endpoint doing one
   INSERT on the same database, under the same gunicorn and the same wrk load.
4. Prints req/s, p50, p99 and errors for both, the ratio signup/floor and the targets; then
   the CPU each request cost the app, PostgreSQL, Redis and wrk, which moves much less than
   the wall-clock figures when other work shares the machine.

The targets are printed, not asserted: a benchmark is not a timed test. The script exits
non-zero only if something did not work (a non-2xx response, a missing row, a crash).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import redis
from _floor_app import CREATE_TABLE
from _support import (
    BENCH_DIR,
    CpuMeter,
    LoadResult,
    ProcessFilter,
    Server,
    alertsvc_command,
    browser_session,
    children_of,
    command_starts,
    exit_cleanly_on_sigterm,
    fresh_database,
    gunicorn,
    postgres_backends_of,
    step,
    wait_for_count,
    wrk,
)
from sqlalchemy import Engine, create_engine, make_url, text

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/alertsvc_bench_signup"
DATABASE_URL_VARIABLE = "ALERTSVC_BENCH_SIGNUP_DATABASE_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_URL_VARIABLE = "ALERTSVC_BENCH_REDIS_URL"
LUA_SCRIPT = BENCH_DIR / "_form_post.lua"

TARGET_PER_SECOND = 300.0
TARGET_P99_MS = 50.0
TARGET_RATIO = 0.5

NO_LIMIT = "1000000 per minute"
BENCH_SECRET_KEY = "bench-secret-key-" + "x" * 32  # signs nothing that outlives the run
FORM_REST = [
    ("topics", "data"),
    ("topics", "cyber-security"),
    ("frequency", "daily"),
    ("daily_hour", "7"),
    ("weekly_day", "0"),
    ("weekly_hour", "7"),
    ("timezone", "Europe/London"),
    ("website", ""),
]


@dataclass(frozen=True)
class Scenario:
    name: str
    result: LoadResult
    rows: dict[str, int]
    cpu_s: dict[str, float]
    server_log: str = ""

    def cpu_ms_per_request(self) -> dict[str, float]:
        sent = max(self.result.sent, 1)
        return {name: seconds * 1000 / sent for name, seconds in self.cpu_s.items()}

    @property
    def rows_ok(self) -> bool:
        """Each request sent left exactly its rows.

        Requests sent counts those still in flight when wrk stopped (at most one per
        connection): the server finishes them, but wrk never counts their answers.
        """
        return all(count == self.result.sent for count in self.rows.values())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get(DATABASE_URL_VARIABLE, DEFAULT_DATABASE_URL),
        help=f"database to create afresh (default: ${DATABASE_URL_VARIABLE} or %(default)s)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get(REDIS_URL_VARIABLE, "auto"),
        help="Redis for the rate-limit counters, as in production; 'auto' (the default) uses "
        f"{DEFAULT_REDIS_URL} when it answers, 'none' keeps them in each process's memory",
    )
    parser.add_argument("--connections", type=int, default=4, help="wrk connections")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up first")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--keep-database", action="store_true", help="leave the database for inspection"
    )
    return parser.parse_args(argv)


def session_and_token(base_url: str) -> tuple[str, str]:
    """What a browser holds after loading the signup page: a session cookie and CSRF token."""
    held = browser_session(base_url)
    if held is None:
        raise SystemExit("the signup page gave no CSRF token or session cookie")
    return held


def load(
    server: Server,
    url: str,
    prefix: str,
    body_rest: str,
    cookie: str,
    args: argparse.Namespace,
) -> tuple[LoadResult, dict[str, float]]:
    """Warm up under a separate prefix, then measure: the run, and CPU seconds by process."""
    target = server.url + "/"
    wrk(target, LUA_SCRIPT, [f"warmup-{prefix}", body_rest, cookie],
        duration_s=args.warmup, connections=args.connections)  # fmt: skip
    groups: dict[str, ProcessFilter] = {
        "app": children_of(server.pid),
        "PostgreSQL": postgres_backends_of(str(make_url(url).database)),
    }
    if args.limiter_redis:
        groups["Redis"] = command_starts("redis-server")
    with CpuMeter(groups) as meter:
        result = wrk(target, LUA_SCRIPT, [prefix, body_rest, cookie],
                     duration_s=args.duration, connections=args.connections)  # fmt: skip
    return result, {**meter.seconds, "wrk": result.client_cpu_s}


def count_rows(engine: Engine, sql: str, prefix: str) -> int:
    with engine.connect() as connection:
        return connection.execute(text(sql), {"pattern": prefix + "-%"}).scalar_one()


SIGNUP_COUNTS = {
    "subscribers": "SELECT count(*) FROM subscribers WHERE email LIKE :pattern",
    "signup_requests": (
        "SELECT count(*) FROM signup_requests r JOIN subscribers s ON s.id = r.subscriber_id"
        " WHERE s.email LIKE :pattern"
    ),
    "outbox": "SELECT count(*) FROM outbox WHERE to_address LIKE :pattern",
}
FLOOR_COUNTS = {"bench_floor": "SELECT count(*) FROM bench_floor WHERE email LIKE :pattern"}


def rows_landed(engine: Engine, queries: dict[str, str], prefix: str, sent: int) -> dict[str, int]:
    return {
        table: wait_for_count(lambda sql=sql: count_rows(engine, sql, prefix), sent)
        for table, sql in queries.items()
    }


def redis_url(choice: str) -> str | None:
    """The Redis to keep rate-limit counters in, or None for per-process memory."""
    if choice == "none":
        return None
    url = DEFAULT_REDIS_URL if choice == "auto" else choice
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        if choice == "auto":
            return None
        raise SystemExit(f"Redis at {url} does not answer") from None
    return url


def run_signup(url: str, engine: Engine, run_id: str, args: argparse.Namespace) -> Scenario:
    env = {
        "ALERTSVC_DATABASE_URL": url,
        "ALERTSVC_ENV": "production",
        "ALERTSVC_SECRET_KEY": BENCH_SECRET_KEY,
        "ALERTSVC_BASE_URL": "https://alerts.bench.invalid",
        "ALERTSVC_SIGNUP_RATE_LIMIT_PER_IP": NO_LIMIT,
        "ALERTSVC_SIGNUP_RATE_LIMIT_PER_ADDRESS": NO_LIMIT,
        "ALERTSVC_RATELIMIT_KEY_PREFIX": f"bench-{run_id}",
    }
    if args.limiter_redis:
        env["ALERTSVC_REDIS_URL"] = args.limiter_redis
    prefix = f"signup-{run_id}"
    step("starting gunicorn wsgi:app")
    with gunicorn("wsgi:app", env=env, workers=args.workers, ready_path="/healthz") as server:
        step("driving signup POSTs")
        cookie, token = session_and_token(server.url)
        body_rest = urlencode([*FORM_REST, ("csrf_token", token)])
        result, cpu = load(server, url, prefix, body_rest, cookie, args)
        rows = rows_landed(engine, SIGNUP_COUNTS, prefix, result.sent)
        log = server.log_tail() if result.errors else ""
    return Scenario("signup POST /", result, rows, cpu, log)


def run_floor(url: str, engine: Engine, run_id: str, args: argparse.Namespace) -> Scenario:
    with engine.begin() as connection:
        connection.execute(CREATE_TABLE)
    prefix = f"floor-{run_id}"
    env = {"BENCH_FLOOR_DATABASE_URL": url}
    app = "_floor_app:create_app()"
    step("starting gunicorn for the floor")
    with gunicorn(app, env=env, workers=args.workers, chdir=BENCH_DIR) as server:
        step("driving the floor")
        result, cpu = load(server, url, prefix, urlencode(FORM_REST), "", args)
        rows = rows_landed(engine, FLOOR_COUNTS, prefix, result.sent)
        log = server.log_tail() if result.errors else ""
    return Scenario("floor: bare Flask, 1 INSERT", result, rows, cpu, log)


def report(signup: Scenario, floor: Scenario, server: str, args: argparse.Namespace) -> None:
    limiter = args.limiter_redis or "process memory"
    print(
        f"signup benchmark: gunicorn -w {args.workers} (sync), PostgreSQL {server}, "
        f"rate-limit counters in {limiter}, wrk 1 thread x {args.connections} connections, "
        f"{args.duration:g} s after {args.warmup:g} s warm-up, {os.cpu_count()} CPUs"
    )
    print(f"{'scenario':<30} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}  rows")
    for scenario in (signup, floor):
        r = scenario.result
        rows = ", ".join(f"{n} {table}" for table, n in scenario.rows.items())
        check = "ok" if scenario.rows_ok else "MISMATCH"
        check += f": {r.requests} answered, {r.sent} sent"
        print(
            f"{scenario.name:<30} {r.per_second:>8.1f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
            f"{r.errors:>7}  {check} ({rows})"
        )
    ratio = signup.result.per_second / floor.result.per_second if floor.result.per_second else 0
    print(f"{'ratio signup/floor':<30} {ratio:>8.2f}")
    s = signup.result
    targets = [
        (f"signup >= {TARGET_PER_SECOND:g} req/s", f"{s.per_second:.1f}",
         s.per_second >= TARGET_PER_SECOND),
        (f"signup p99 < {TARGET_P99_MS:g} ms", f"{s.p99_ms:.2f}", s.p99_ms < TARGET_P99_MS),
        (f"ratio signup/floor >= {TARGET_RATIO:g}", f"{ratio:.2f}", ratio >= TARGET_RATIO),
    ]  # fmt: skip
    for name, value, met in targets:
        print(f"target: {name:<29} {value:>8}  {'met' if met else 'MISSED'}")
    report_cpu(signup, floor)


def report_cpu(signup: Scenario, floor: Scenario) -> None:
    """CPU per request by process: steadier than wall-clock figures on a shared machine."""
    names = list(dict.fromkeys([*signup.cpu_s, *floor.cpu_s]))
    print(f"\n{'CPU ms per request':<30}" + "".join(f"{n:>11}" for n in names) + f"{'total':>9}")
    totals = []
    for scenario in (signup, floor):
        cpu = scenario.cpu_ms_per_request()
        totals.append(sum(cpu.values()))
        cells = "".join(f"{cpu[n]:>11.2f}" if n in cpu else f"{'-':>11}" for n in names)
        print(f"{scenario.name:<30}{cells}{totals[-1]:>9.2f}")
    if totals[0]:
        print(f"{'ratio signup/floor by CPU':<30}{totals[1] / totals[0]:>11.2f}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_cleanly_on_sigterm()
    run_id = str(int(time.time()))
    args.limiter_redis = redis_url(args.redis_url)
    with fresh_database(args.database_url, keep=args.keep_database) as url:
        env = {"ALERTSVC_DATABASE_URL": url, "ALERTSVC_ENV": "development"}
        step(f"migrating a fresh database {make_url(url).database}")
        alertsvc_command(["db", "upgrade"], env)
        alertsvc_command(["seed-demo"], env)
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                server = connection.execute(text("SHOW server_version")).scalar_one()
            signup = run_signup(url, engine, run_id, args)
            floor = run_floor(url, engine, run_id, args)
        finally:
            engine.dispose()
    report(signup, floor, server.split()[0], args)
    failed = [
        s.name for s in (signup, floor) if s.result.errors or not s.rows_ok or not s.result.requests
    ]
    for scenario in (signup, floor):
        if scenario.server_log:
            print(f"-- end of the server log for {scenario.name}:\n{scenario.server_log}")
    if failed:
        print(f"FAILED: errors or missing rows in {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
