"""Servers of a scenario's own, to stop and start at will: a PostgreSQL cluster, a Redis, the
SES sink, and the alertsvc processes running against them.

The shared PostgreSQL (5432) and Redis (6379) are never touched: an outage scenario starts
its own on free ports, in a temporary directory, and removes them afterwards. Every process
is started in a group of its own and stopped by group, with bounded waits.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

import httpx
import psycopg
from psycopg import sql

from bench._support import free_port, step
from bench.reliability._service_processes import (
    ses_env,
    sink_process,
    start_alertsvc,
    stop_group,
)

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SECRET_KEY = "reliability-scenario-key-0123456789abcdefghijklmnop"


def _as_postgres(*command: str) -> list[str]:
    """``command`` as the ``postgres`` OS user (PostgreSQL refuses to run as root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return list(command)


@dataclass
class PostgresCluster:
    """A PostgreSQL 15 cluster of this scenario's own, on a free loopback port."""

    directory: Path
    port: int

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _ctl(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args),
            check=True,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
            "-c fsync=off -c max_connections=100"
        )
        self._ctl("-o", options, "-l", str(self.log), "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast``: roll back open transactions and disconnect every client, as a restart
        for an upgrade or a failover does."""
        self._ctl("-m", mode, "-w", "-t", "30", "stop")

    def create_database(self, name: str) -> str:
        """Create ``name`` (the cluster is new and goes with the scenario: nothing to drop)
        and return its SQLAlchemy URL."""
        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """initdb a fresh cluster in a temporary directory, start it; stop and remove it after."""
    directory = Path(tempfile.mkdtemp(prefix="alertsvc-reliability-pg-"))
    cluster = PostgresCluster(directory, free_port())
    try:
        if os.geteuid() == 0:
            shutil.chown(directory, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                str(PG_BIN / "initdb"),
                "-D",
                str(cluster.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ),
            check=True,
            timeout=120,
            stdout=subprocess.DEVNULL,
        )
        cluster.start()
        step(f"own PostgreSQL cluster on port {cluster.port} in {directory}")
        yield cluster
    finally:
        if cluster.running():
            with contextlib.suppress(subprocess.SubprocessError):
                cluster.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)


def connected_to(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds an open TCP connection to ``port`` on this host's IPv4
    loopback: its socket descriptors matched against the kernel's connection table."""
    sockets = set()
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    for fd in descriptors:
        with contextlib.suppress(OSError):  # closed since it was listed (the listing's own)
            sockets.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    for line in table:
        fields = line.split()
        remote_port = int(fields[2].rsplit(":", 1)[1], 16)
        established = fields[3] == "01"
        if established and remote_port == port and f"socket:[{fields[9]}]" in sockets:
            return True
    return False


@dataclass
class RedisServer:
    """A redis-server of this scenario's own, on a free loopback port, without persistence."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process, timeout=5)
            self.process = None

    def ping(self) -> bool:
        return self.command("PING") == "PONG"

    def command(self, *args: str) -> str | None:
        """One redis-cli command's output, or None if Redis did not answer."""
        try:
            result = subprocess.run(
                ["redis-cli", "-p", str(self.port), *args],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None
        if result.returncode != 0 or "Could not connect" in result.stdout + result.stderr:
            return None
        return result.stdout.strip()


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    directory = Path(tempfile.mkdtemp(prefix="alertsvc-reliability-redis-"))
    server = RedisServer(free_port(), directory)
    try:
        server.start()
        step(f"own Redis on port {server.port}")
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class Sink:
    """bench/_ses_sink.py: answers SES v2 SendEmail, keeps each arrival's time and
    Message-ID."""

    url: str

    def arrivals(self) -> list[tuple[float, str]]:
        data = httpx.get(f"{self.url}/_sink/arrivals", timeout=60).json()
        return [(float(at), str(message_id)) for at, message_id in data]

    def count(self) -> int:
        return int(httpx.get(f"{self.url}/_sink/stats", timeout=30).json()["count"])


@contextlib.contextmanager
def ses_sink() -> Iterator[Sink]:
    with sink_process(stop=lambda process: stop_group(process, timeout=5)) as url:
        yield Sink(url)


def prepare_database(
    url: str, topics: tuple[tuple[str, str], ...] = (("data", "Data"),), emails: int = 0
) -> None:
    """The real migrations, then ``topics`` and ``emails`` queued emails (an "already
    subscribed" reply each, to its own address), in this process (one import of the app
    rather than a process per command: minutes saved on a busy machine); its connections
    are closed before it returns, so none is left to a server the scenario stops."""
    from flask_migrate import upgrade

    from alertsvc import create_app
    from alertsvc.database import transaction
    from alertsvc.delivery.outbox import queue_email
    from alertsvc.extensions import db
    from alertsvc.topics.services import add_topic

    app = create_app({"ENV": "development", "SECRET_KEY": SECRET_KEY, "DATABASE_URL": url})
    with app.app_context():
        try:
            upgrade()
            with transaction():
                for slug, name in topics:
                    add_topic(slug, name)
                for n in range(emails):
                    queue_email(
                        template="already_subscribed",
                        to_address=f"queued{n}@example.com",
                        subject="You're already subscribed",
                        context={"topic_names": ["Data"], "frequency": "daily"},
                    )
        finally:
            db.session.remove()
            db.engine.dispose()


def service_env(database_url: str, sink: Sink, **settings: str) -> dict[str, str]:
    """Settings for web, worker and scheduler: this database, the ses transport into the
    sink, a fixed key (no file written in the tree), text logs."""
    return ses_env(
        database_url,
        sink.url,
        SECRET_KEY,
        settings,
        ALERTSVC_LOG_FORMAT="text",
        FLASK_SKIP_DOTENV="1",
    )


@dataclass
class Service:
    """An ``alertsvc`` command running as its own process group, output to a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.time)

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_service(name: str, args: list[str], env: Mapping[str, str], log_dir: Path) -> Service:
    """``alertsvc ARGS`` as its own Python process (the package of this tree)."""
    log = log_dir / f"{name}.log"
    return Service(name, start_alertsvc(args, env, log), log)


# -- load on the web while its servers go away ----------------------------------------------

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
AnswerT = TypeVar("AnswerT")


def signup_form(csrf_token: str, email: str) -> dict[str, str]:
    """The signup form as a reader fills it in: Data, daily at 07:00 London time."""
    return {
        "csrf_token": csrf_token,
        "email": email,
        "topics": "data",
        "frequency": "daily",
        "daily_hour": "7",
        "weekly_day": "0",
        "weekly_hour": "7",
        "timezone": "Europe/London",
    }


class LoadThreads(Generic[AnswerT]):
    """Threads sending requests until stopped: started on entering, stopped and joined
    (bounded) on leaving; each answer kept, in ``answers``."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.answers: list[AnswerT] = []
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def add(self, target: Callable[..., None], *args: Any) -> None:
        self.threads.append(threading.Thread(target=target, args=args, daemon=True))

    def __enter__(self) -> Self:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def keep(self, answer: AnswerT) -> None:
        with self.lock:
            self.answers.append(answer)
