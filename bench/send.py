"""Sending through SES: workers draining a digest run into a local SES sink, on PostgreSQL.

    uv run python bench/send.py [--rows N] [--concurrency C] [--million]

Plans a real daily digest run (bench/digest_plan.py's subscribers, every one due at 07:00)
and tops the outbox up to N queued digest rows (200,000 by default), then, against a local
server that answers SES v2 ``SendEmail`` as SES does (bench/_ses_sink.py, a sink for
throughput only), measures in one run:

- emails/s of one ``alertsvc worker --burst --concurrency C`` with the ``ses`` transport,
  then of two such workers, from the first to the last arrival at the sink;
- the floor: raw boto3 ``send_email`` calls, with a message alertsvc built, from the same
  number of processes and threads into the same sink; and the ratio;
- claims/s with sending disabled (``claim_outbox_batch`` in a loop, batches of the
  worker's size);
- each worker's peak RSS, and its RSS early and late in the run (flat or growing);
- queue-to-sink latency p50/p99 of single emails queued one at a time (``queue_email``,
  committed) while a worker is idle with the default polling interval.

With --million it then plans bench/digest_plan.py's 1,000,000-subscriber daily run with two
idle workers already running, and prints the wall time from the start of planning to the
last email at the sink, and each process's peak RSS.

Targets on the 2-core machine: >= 1,000 emails/s for one worker, >= 0.8x the floor,
claims >= 5,000/s, RSS <= 150 MB and flat, queue-to-sink p50 <= 1 s; --million: <= 15 min.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import psycopg
from _support import (
    PROJECT_ROOT,
    alertsvc_command,
    exit_cleanly_on_sigterm,
    free_port,
    fresh_database,
    render_url,
    step,
)
from digest_plan import WINDOW_END, populate, run_cli

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/alertsvc_bench_send"
SINK = Path(__file__).resolve().parent / "_ses_sink.py"
REGION = "eu-west-2"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
LATENCY_SAMPLES = 50
CLAIM_SECONDS = 20.0
DRAIN_TIMEOUT = 3600.0


# -- the sink ------------------------------------------------------------------------------


@dataclass
class Sink:
    url: str
    process: subprocess.Popen[bytes]

    def stats(self) -> dict[str, float | None]:
        return httpx.get(f"{self.url}/_sink/stats", timeout=30).json()

    def arrivals(self) -> list[tuple[float, str]]:
        return [tuple(pair) for pair in httpx.get(f"{self.url}/_sink/arrivals", timeout=60).json()]

    def reset(self) -> None:
        httpx.post(f"{self.url}/_sink/reset", timeout=30).raise_for_status()

    def rate(self) -> tuple[int, float]:
        """(emails received, emails/s from the first arrival to the last)."""
        stats = self.stats()
        count = int(stats["count"] or 0)
        if count < 2:
            return count, 0.0
        return count, (count - 1) / (float(stats["last"]) - float(stats["first"]))


@contextlib.contextmanager
def ses_sink() -> Iterator[Sink]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(SINK), "--port", str(port)], start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{url}/_sink/stats", timeout=1).raise_for_status()
                break
            time.sleep(0.1)
        else:
            raise SystemExit("the SES sink did not start")
        yield Sink(url, process)
    finally:
        process.terminate()
        process.wait(timeout=10)


# -- processes and their memory ------------------------------------------------------------


@dataclass
class Watched:
    """A process and its resident memory, sampled every half second."""

    process: subprocess.Popen[bytes]
    samples: list[float] = field(default_factory=list)

    def sample(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.samples.append(int(line.split()[1]) / 1024)

    @property
    def peak(self) -> float:
        return max(self.samples, default=0.0)

    def early_late(self) -> tuple[float, float]:
        """Mean RSS over the second tenth of the run and over its last tenth."""
        if len(self.samples) < 20:
            return (self.samples[0], self.samples[-1]) if self.samples else (0.0, 0.0)
        tenth = len(self.samples) // 10
        return (
            statistics.fmean(self.samples[tenth : 2 * tenth]),
            statistics.fmean(self.samples[-tenth:]),
        )


@contextlib.contextmanager
def sampling(watched: list[Watched]) -> Iterator[None]:
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(0.5):
            for item in watched:
                item.sample()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def start_worker(env: Mapping[str, str], *args: str) -> subprocess.Popen[bytes]:
    """``alertsvc worker ARGS`` as its own Python process (no ``uv run`` in between, so the
    pid is the worker's and its RSS is the worker's)."""
    return subprocess.Popen(
        [sys.executable, "-c", "from alertsvc.cli import main; main()", "worker", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the runs ------------------------------------------------------------------------------


def worker_env(database_url: str, sink: Sink) -> dict[str, str]:
    return {
        **AWS_ENV,
        "ALERTSVC_ENV": "development",
        "ALERTSVC_DATABASE_URL": database_url,
        "ALERTSVC_BASE_URL": "https://alerts.example.org",
        "ALERTSVC_MAIL_TRANSPORT": "ses",
        "ALERTSVC_SES_REGION": REGION,
        "ALERTSVC_SES_ENDPOINT_URL": sink.url,
        "ALERTSVC_LOG_LEVEL": "WARNING",
    }


def drain(env: Mapping[str, str], sink: Sink, workers: int, concurrency: int) -> Mapping:
    """Start ``workers`` burst workers on the queued rows; wait for them to finish."""
    sink.reset()
    watched = [
        Watched(start_worker(env, "--burst", "--concurrency", str(concurrency)))
        for _ in range(workers)
    ]
    with sampling(watched):
        for item in watched:
            try:
                output, _ = item.process.communicate(timeout=DRAIN_TIMEOUT)
            except subprocess.TimeoutExpired:
                stop_process(item.process)
                raise SystemExit("a worker did not finish within the time allowed") from None
            if item.process.returncode != 0:
                sys.stderr.write(output.decode(errors="replace")[-4000:])
                raise SystemExit(f"alertsvc worker exited with {item.process.returncode}")
            step(f"worker said: {output.decode(errors='replace').strip().splitlines()[-1]}")
    count, rate = sink.rate()
    return {"count": count, "rate": rate, "watched": watched}


def sample_message(database_url: str) -> bytes:
    """One digest email exactly as alertsvc builds it, for the floor to send."""
    from sqlalchemy import select

    from alertsvc import create_app
    from alertsvc.delivery.messages import build_message
    from alertsvc.extensions import db
    from alertsvc.models import EmailBody, OutboxEmail, Subscriber

    app = create_app({"ENV": "development", "SQLALCHEMY_DATABASE_URI": database_url})
    with app.app_context():
        row = db.session.scalars(select(OutboxEmail).limit(1)).one()
        body = db.session.get(EmailBody, row.body_id)
        db.session.expunge(row)
        row.to_address = db.session.get(Subscriber, row.subscriber_id).email
        row.subject = body.subject
        row.message_id = "<floor@alerts.example.org>"
        raw = build_message(row, body).as_bytes()
        db.session.rollback()
        db.engine.dispose()
    return raw


FLOOR_CHILD = """
import sys, boto3
from botocore.config import Config
from concurrent.futures import ThreadPoolExecutor
endpoint, region, threads, count, path = sys.argv[1:6]
raw = open(path, "rb").read()
client = boto3.client("sesv2", region_name=region, endpoint_url=endpoint,
    config=Config(retries={"total_max_attempts": 1}, max_pool_connections=int(threads)))
def send(_):
    client.send_email(FromEmailAddress="alerts@alerts.example.org",
        Destination={"ToAddresses": ["reader@example.com"]},
        Content={"Raw": {"Data": raw}})
with ThreadPoolExecutor(int(threads)) as pool:
    list(pool.map(send, range(int(count))))
"""


def floor(sink: Sink, raw_path: Path, processes: int, threads: int, count: int) -> float:
    """Raw boto3 from ``processes`` processes x ``threads`` threads: emails/s at the sink."""
    sink.reset()
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                FLOOR_CHILD,
                sink.url,
                REGION,
                str(threads),
                str(count // processes),
                str(raw_path),
            ],
            env={**os.environ, **AWS_ENV},
        )
        for _ in range(processes)
    ]
    for child in children:
        if child.wait(timeout=DRAIN_TIMEOUT) != 0:
            raise SystemExit("a floor process failed")
    return sink.rate()[1]


def requeue(dsn: str) -> None:
    """Every row back to queued, as the run left it, for the next measurement."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(
            "UPDATE outbox SET status = 'queued', attempts = 0, lease_expires_at = NULL,"
            " sent_at = NULL, provider_message_id = NULL, last_error = NULL,"
            " next_attempt_at = created_at"
        )
        connection.execute("VACUUM ANALYZE outbox")


def claims_per_second(database_url: str, batch_size: int) -> tuple[int, float]:
    """Claim batches as a worker does, sending nothing: (rows claimed, rows/s)."""
    from alertsvc import create_app
    from alertsvc.database import transaction
    from alertsvc.delivery.worker import claim_outbox_batch
    from alertsvc.models import utcnow

    app = create_app({"ENV": "development", "SQLALCHEMY_DATABASE_URI": database_url})
    claimed = 0
    with app.app_context():
        started = time.perf_counter()
        while time.perf_counter() - started < CLAIM_SECONDS:
            with transaction():
                rows = claim_outbox_batch(batch_size, 300, utcnow())
            if not rows:
                break
            claimed += len(rows)
        seconds = time.perf_counter() - started
        from alertsvc.extensions import db

        db.engine.dispose()
    return claimed, claimed / seconds


def latency(database_url: str, env: Mapping[str, str], sink: Sink) -> list[float]:
    """Seconds from the commit of a queued email to its arrival at the sink, one at a time,
    with an idle worker on the default polling interval."""
    from alertsvc import create_app
    from alertsvc.database import transaction
    from alertsvc.delivery.outbox import queue_email
    from alertsvc.extensions import db

    app = create_app({"ENV": "development", "SQLALCHEMY_DATABASE_URI": database_url})
    worker = start_worker(env)
    delays: list[float] = []
    try:
        time.sleep(5)  # started, and idle: nothing is queued
        sink.reset()
        with app.app_context():
            for n in range(LATENCY_SAMPLES):
                with transaction():
                    email = queue_email(
                        template="already_subscribed",
                        to_address=f"latency{n}@example.com",
                        subject="You're already subscribed",
                        context={"topic_names": ["Topic 1"], "frequency": "daily"},
                    )
                    message_id = email.message_id
                committed = time.time()
                deadline = time.monotonic() + 30
                arrived = None
                while arrived is None and time.monotonic() < deadline:
                    time.sleep(0.01)
                    arrived = next(
                        (at for at, found in sink.arrivals() if found == message_id), None
                    )
                if arrived is None:
                    raise SystemExit(f"{message_id} did not reach the sink within 30 s")
                delays.append(arrived - committed)
                time.sleep(0.2)
            db.engine.dispose()
    finally:
        stop_process(worker)
    return delays


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def top_up(dsn: str, rows: int) -> int:
    """Copy queued digest rows (new ids, same subscribers and bodies) until there are ``rows``."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        have = connection.execute("SELECT count(*) FROM outbox").fetchone()[0]
        while have < rows:
            connection.execute(
                "INSERT INTO outbox (created_at, template, context, subscriber_id,"
                " unsubscribe_topic_ids, body_id, status, attempts, next_attempt_at)"
                " SELECT created_at, template, context, subscriber_id, unsubscribe_topic_ids,"
                " body_id, status, 0, next_attempt_at FROM outbox ORDER BY id LIMIT %s",
                (rows - have,),
            )
            have = connection.execute("SELECT count(*) FROM outbox").fetchone()[0]
        connection.execute("VACUUM ANALYZE outbox")
    return have


def mb(watched: list[Watched]) -> str:
    return ", ".join(
        f"peak {item.peak:.0f} MB (early {item.early_late()[0]:.0f} -> late "
        f"{item.early_late()[1]:.0f})"
        for item in watched
    )


def standard_run(args: argparse.Namespace) -> None:
    with fresh_database(args.database_url) as url, ses_sink() as sink:
        database_url = render_url(url)
        dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
        env = worker_env(database_url, sink)
        alertsvc_command(["db", "upgrade"], env)
        subscribers = int(args.rows * 0.8)
        step(f"creating {subscribers:,} subscribers, all due at 07:00")
        populate(dsn, subscribers, all_due=True)
        run_cli(env, "digest", "run", "daily", "--at", WINDOW_END.isoformat())
        rows = top_up(dsn, args.rows)
        step(f"{rows:,} digest emails queued")
        raw_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-send-{os.getpid()}.eml"
        raw_path.write_bytes(sample_message(database_url))
        try:
            results = {}
            for workers in (1, 2):
                step(f"floor: raw boto3 from {workers} process(es) x {args.concurrency} threads")
                floor_rate = floor(sink, raw_path, workers, args.concurrency, args.floor_emails)
                step(f"{workers} worker(s) x --concurrency {args.concurrency}")
                drained = drain(env, sink, workers, args.concurrency)
                if drained["count"] != rows:
                    raise SystemExit(f"the sink received {drained['count']:,} of {rows:,}")
                results[workers] = (drained, floor_rate)
                requeue(dsn)
        finally:
            raw_path.unlink(missing_ok=True)
        step("claims with sending disabled")
        claimed, claim_rate = claims_per_second(database_url, args.batch_size)
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute("UPDATE outbox SET status = 'sent'")
        step(f"queue-to-sink latency, {LATENCY_SAMPLES} single emails, idle worker")
        delays = latency(database_url, env, sink)
    print()
    print(f"{rows:,} queued digest emails, SES sink, --concurrency {args.concurrency}")
    print(f"{'workers':<9}{'emails/s':>10}{'floor/s':>10}{'ratio':>7}  RSS per worker")
    for workers, (drained, floor_rate) in results.items():
        ratio = drained["rate"] / floor_rate if floor_rate else 0.0
        print(
            f"{workers:<9}{drained['rate']:>10,.0f}{floor_rate:>10,.0f}{ratio:>7.2f}  "
            f"{mb(drained['watched'])}"
        )
    print(
        f"claims, sending disabled: {claimed:,} in batches of {args.batch_size}: "
        f"{claim_rate:,.0f}/s"
    )
    print(
        f"queue-to-sink latency: p50 {percentile(delays, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(delays, 0.99) * 1000:.0f} ms over {len(delays)} emails"
    )
    print(
        "targets: one worker >= 1,000/s and >= 0.8x the floor; claims >= 5,000/s; "
        "RSS <= 150 MB and flat; latency p50 <= 1 s"
    )


def million_run(args: argparse.Namespace) -> None:
    url = args.database_url.rsplit("/", 1)[0] + "/alertsvc_bench_send_million"
    with fresh_database(url) as url, ses_sink() as sink:
        database_url = render_url(url)
        dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
        env = worker_env(database_url, sink)
        alertsvc_command(["db", "upgrade"], env)
        step("creating 1,000,000 subscribers")
        populate(dsn, 1_000_000)
        watched = [
            Watched(start_worker(env, "--concurrency", str(args.concurrency))) for _ in range(2)
        ]
        try:
            with sampling(watched):
                time.sleep(5)
                sink.reset()
                step("planning the daily run, two idle workers waiting")
                started = time.time()
                _, plan_mb = run_cli(env, "digest", "run", "daily", "--at", WINDOW_END.isoformat())
                with psycopg.connect(dsn) as connection:
                    emails = connection.execute("SELECT count(*) FROM outbox").fetchone()[0]
                deadline = time.monotonic() + DRAIN_TIMEOUT
                while sink.stats()["count"] < emails and time.monotonic() < deadline:
                    time.sleep(2)
                stats = sink.stats()
        finally:
            for item in watched:
                stop_process(item.process)
    if stats["count"] < emails:
        raise SystemExit(f"only {stats['count']:,} of {emails:,} emails reached the sink")
    wall = float(stats["last"]) - started
    print()
    print(f"1,000,000 subscribers: {emails:,} digest emails planned and delivered")
    print(
        f"wall time, start of planning to last email at the sink: {timedelta(seconds=round(wall))}"
        f" ({emails / wall:,.0f} emails/s overall)"
    )
    print(f"peak RSS: planner {plan_mb:.0f} MB; workers {mb(watched)}")
    print("target: <= 15 minutes")


def main() -> None:
    exit_cleanly_on_sigterm()
    # The app's logging set-up (create_app, for the sample message) would log every request
    # this script makes to the sink.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=100, help="the worker's default")
    parser.add_argument("--floor-emails", type=int, default=30_000)
    parser.add_argument("--million", action="store_true")
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_SEND_DATABASE_URL", DEFAULT_URL)
    )
    args = parser.parse_args()
    standard_run(args)
    if args.million:
        million_run(args)


if __name__ == "__main__":
    main()
