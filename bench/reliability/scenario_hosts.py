"""Several hosts: web, two workers and the scheduler on four network hosts of their own.

Each process runs in a network namespace of its own (``ip netns``), joined to the others by
a veth pair to a switch (a bridge in a namespace of its own). PostgreSQL (a cluster started
for the scenario), Redis and the SES sink (``bench/_ses_sink.py``) run in a "services"
namespace and listen only on its veth address; this script, in the root namespace, is one
more host on the switch. Nothing is shared but the network: every setting comes from the
environment, and each process has its own MAIL_DIR, PROMETHEUS_MULTIPROC_DIR and instance
folder (a private bind mount over ``instance/`` in the process's own mount namespace).
Loopback is down on every host, so nothing can be reached through it.

End to end, as a reader and an operator would: a signup through the web's form (GET, CSRF,
POST), the confirmation email found at the sink and its link followed (GET, POST); then a
daily digest run planned on the scheduler's host (``alertsvc digest run daily --at``) for
that reader and a few thousand seeded subscribers, sent by the two workers within a
fleet-wide rate kept in Redis. While mail is being sent one worker's link is cut
(``ip link set … down`` on its switch port) for 20 s (5 s in the short variant), then
restored. The sink answers each send 50 ms after taking it, so the cut always catches sends
SES has taken and not yet answered: those must be waited for, not sent again. Afterwards
every email queued is at the sink exactly once (its Message-ID against the outbox).

Needs root (``ip netns``, ``mount``, ``runuser``), iproute2, PostgreSQL 15's server
binaries and redis-server. Every namespace, link and process is removed in ``finally``;
leftovers of an earlier run (names starting ``as-``) are removed first.
"""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import psycopg
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from alertsvc.models import Frequency, OutboxStatus
from bench._support import PROJECT_ROOT, step
from bench.reliability.table import Row

NAME = "several hosts"
NEEDS_POSTGRESQL = True

PREFIX = "as-"
SWITCH = "as-lan"
SUBNET = "10.77.0"
ROOT_LINK = "as-root"
ROOT_ADDRESS = f"{SUBNET}.1"
# host -> last octet of its address; each host is the namespace "as-<host>".
HOSTS = {"services": 2, "web": 10, "worker1": 11, "worker2": 12, "scheduler": 13}
SERVICES = f"{SUBNET}.{HOSTS['services']}"
WEB_PORT, PG_PORT, REDIS_PORT, SINK_PORT = 8000, 5432, 6379, 9000

DATABASE = "alertsvc"
TOPIC = "data"
TIMEZONE = "Europe/London"
CUT_WORKER = "worker1"
# The sink answers each send this long after taking it, as SES across the internet does, and
# each worker sends with this many threads: every thread always has a send in flight, so
# the cut always catches sends SES has taken and not yet answered. That caps a worker at
# THREADS / SES_LATENCY_S emails a second, below the fleet's rate kept in Redis.
SES_LATENCY_S = 0.05
THREADS = 4
SEND_RATE = 200  # emails/s across the fleet
GRACE_S = 10.0  # seconds to stop before a process group is killed
# The CLI of this tree (the working directory comes first on sys.path), as bench/_support does.
ALERTSVC = [sys.executable, "-c", "from alertsvc.cli import main; main()"]


def postgresql_bin() -> Path | None:
    """The newest PostgreSQL server binaries Debian installed (15 here)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda path: int(path.parts[-3])
    )
    return found[-1].parent if found else None


def namespace(host: str) -> str:
    return f"{PREFIX}{host}"


def address(host: str) -> str:
    return f"{SUBNET}.{HOSTS[host]}"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command (``ip``, ``runuser``, ``pg_ctl``) that ends by itself, bounded."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {(result.stderr or result.stdout).strip()}")
    return result


# -- the network ---------------------------------------------------------------------------


def kill_namespace_processes(name: str) -> None:
    """SIGKILL what still runs in namespace ``name`` (ours: its names start ``as-``)."""
    pids = sh("ip", "netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def remove_network() -> None:
    """Every ``as-`` namespace (and what still runs in it) and root link; for leftovers of an
    earlier run as much as for this one's teardown."""
    listed = sh("ip", "netns", "list", check=False).stdout.split("\n")
    for line in listed:
        name = line.split(" ", 1)[0]
        if name.startswith(PREFIX):
            kill_namespace_processes(name)
            sh("ip", "netns", "del", name, check=False)
    links = sh("ip", "-o", "link", "show", check=False).stdout.splitlines()
    for line in links:
        name = line.split(":", 2)[1].strip().split("@", 1)[0] if ":" in line else ""
        if name.startswith(PREFIX):
            sh("ip", "link", "del", name, check=False)


def build_network() -> None:
    """The switch namespace with its bridge, a namespace per host joined to it by a veth
    pair (``eth0`` inside, ``p-<host>`` on the switch), and the root namespace's own port.

    Each host's loopback stays down: whatever a process reaches, it reaches over its veth.
    """
    sh("ip", "netns", "add", SWITCH)
    sh("ip", "-n", SWITCH, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", SWITCH, "link", "set", "br0", "up")
    for host in HOSTS:
        ns = namespace(host)
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", SWITCH, "link", "add", f"p-{host}", "type", "veth",
           "peer", "name", "eth0", "netns", ns)  # fmt: skip
        sh("ip", "-n", SWITCH, "link", "set", f"p-{host}", "master", "br0", "up")
        sh("ip", "-n", ns, "addr", "add", f"{address(host)}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
    sh("ip", "link", "add", ROOT_LINK, "type", "veth", "peer", "name", "p-root", "netns", SWITCH)
    sh("ip", "-n", SWITCH, "link", "set", "p-root", "master", "br0", "up")
    sh("ip", "addr", "add", f"{ROOT_ADDRESS}/24", "dev", ROOT_LINK)
    sh("ip", "link", "set", ROOT_LINK, "up")


def set_link(host: str, up: bool) -> None:
    """Plug or unplug ``host``'s cable at the switch."""
    sh("ip", "-n", SWITCH, "link", "set", f"p-{host}", "up" if up else "down")


def reachable(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


# -- processes -----------------------------------------------------------------------------


@dataclass
class Fleet:
    """The scenario's processes and their folders, all under one temporary directory."""

    root: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    commands: list[OperatorCommand] = field(default_factory=list)

    def folder(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def start(
        self,
        name: str,
        host: str,
        command: list[str],
        env: dict[str, str] | None = None,
        *,
        private_instance: bool = False,
    ) -> subprocess.Popen[bytes]:
        """Start ``command`` in ``host``'s namespace, in a process group of its own.

        ``ip netns exec`` gives the process a mount namespace of its own, so the bind mount
        of its own folder over ``instance/`` is seen by it alone.
        """
        prefix = ["ip", "netns", "exec", namespace(host)]
        if private_instance:
            instance = self.folder(name, "instance")
            prefix += [
                "sh", "-c", 'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh",
                str(instance), str(PROJECT_ROOT / "instance"),
            ]  # fmt: skip
        with self.log(name).open("ab") as log:
            process = subprocess.Popen(
                prefix + command,
                cwd=PROJECT_ROOT,
                env=os.environ.copy() if env is None else env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def alertsvc(self, name: str, host: str, args: list[str], env: dict[str, str]) -> None:
        self.start(name, host, [*ALERTSVC, *args], env, private_instance=True)

    def operator(self, host: str, env: dict[str, str]) -> OperatorCommand:
        command = OperatorCommand(host, env)
        self.commands.append(command)
        return command

    def exited(self) -> list[str]:
        return [name for name, process in self.processes.items() if process.poll() is not None]

    def tail(self, name: str, chars: int = 2500) -> str:
        with contextlib.suppress(OSError):
            return self.log(name).read_text(errors="replace")[-chars:]
        return ""

    def stop_all(self) -> None:
        """SIGTERM every group, then SIGKILL what has not stopped within ``GRACE_S``."""
        for command in self.commands:
            command.stop()
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        for name, process in self.processes.items():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            if process.poll() is None:
                step(f"{name} did not stop within {GRACE_S:g} s of SIGTERM: killed")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)


def service_env(fleet: Fleet, name: str, secret_key: str) -> dict[str, str]:
    """One process's settings, from the environment only: production, with its own folders."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ALERTSVC_", "PROMETHEUS_", "AWS_"))
    }
    env.update(
        ALERTSVC_ENV="production",
        ALERTSVC_SECRET_KEY=secret_key,
        ALERTSVC_BASE_URL="https://alerts.example.org",
        ALERTSVC_MAIL_FROM="Public Technology alerts <alerts@alerts.example.org>",
        ALERTSVC_DATABASE_URL=f"postgresql+psycopg://postgres@{SERVICES}:{PG_PORT}/{DATABASE}",
        ALERTSVC_REDIS_URL=f"redis://{SERVICES}:{REDIS_PORT}/0",
        ALERTSVC_MAIL_TRANSPORT="ses",
        ALERTSVC_SES_REGION="eu-west-2",
        ALERTSVC_SES_ENDPOINT_URL=f"http://{SERVICES}:{SINK_PORT}",
        ALERTSVC_SEND_RATE=str(SEND_RATE),
        ALERTSVC_MAIL_DIR=str(fleet.folder(name, "mail")),
        # Retries of the sends the cut interrupted come back within the run.
        ALERTSVC_WORKER_BACKOFF_BASE_SECONDS="2",
        # The sweeper plans missed runs of the last hour only, so the run this scenario
        # plans (hours earlier) is planned by the operator's command alone.
        ALERTSVC_DIGEST_LOOKBACK_HOURS="1",
        ALERTSVC_LOG_FORMAT="text",
        PROMETHEUS_MULTIPROC_DIR=str(fleet.folder(name, "prometheus")),
        AWS_ACCESS_KEY_ID="scenario",
        AWS_SECRET_ACCESS_KEY="scenario",
        PYTHONUNBUFFERED="1",
        FLASK_SKIP_DOTENV="1",  # settings from the environment only, not a checkout's .env
    )
    return env


class OperatorCommand:
    """An ``alertsvc`` command on ``host``, as an operator there would run it, started ahead
    of its time: the process does its imports (seconds of CPU) while the scenario waits for
    something else, then reads its arguments from stdin and runs to its end."""

    PROGRAM = "import sys; from alertsvc.cli import main; sys.argv[1:] = input().split(); main()"

    def __init__(self, host: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", namespace(host), sys.executable, "-c", self.PROGRAM],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def run(self, args: list[str]) -> str:
        """Run ``alertsvc ARGS``; what it printed, or RuntimeError if it fails."""
        try:
            output, errors = self.process.communicate(" ".join(args) + "\n", timeout=120)
        finally:
            self.stop()
        if self.process.returncode != 0:
            raise RuntimeError(
                f"alertsvc {' '.join(args)} failed ({self.process.returncode}): "
                f"{(output + errors)[-2000:]}"
            )
        return output.strip()

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


# -- the services host ---------------------------------------------------------------------


def start_postgresql(fleet: Fleet) -> Path:
    """A cluster of its own, run by the postgres user, listening on the veth address only."""
    # Its data, and a folder for its socket and log: both the postgres user's.
    binaries = postgresql_bin()
    assert binaries is not None  # run() checked
    data, sockets = fleet.folder("pgdata"), fleet.folder("postgresql")
    for folder in (data, sockets):
        shutil.chown(folder, "postgres")
    data.chmod(0o700)
    sh("runuser", "-u", "postgres", "--", str(binaries / "initdb"), "-D", str(data),
       "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C")  # fmt: skip
    with (data / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all all {SUBNET}.0/24 trust\n")
    options = (
        f"-c listen_addresses={SERVICES} -c port={PG_PORT} -c unix_socket_directories={sockets}"
        " -c fsync=off -c max_connections=60"
    )
    sh("ip", "netns", "exec", namespace("services"), "runuser", "-u", "postgres", "--",
       str(binaries / "pg_ctl"), "-D", str(data), "-l", str(sockets / "postgresql.log"),
       "-o", options, "-w", "-t", "30", "start")  # fmt: skip
    return data


def stop_postgresql(data: Path) -> None:
    binaries = postgresql_bin()
    if binaries is not None:
        sh("runuser", "-u", "postgres", "--", str(binaries / "pg_ctl"), "-D", str(data),
           "-m", "fast", "-w", "-t", "15", "stop", check=False)  # fmt: skip


@dataclass(frozen=True)
class Sink:
    url: str

    def count(self) -> int:
        return int(httpx.get(f"{self.url}/_sink/stats", timeout=10).json()["count"])

    def message_ids(self) -> list[str]:
        return [pair[1] for pair in httpx.get(f"{self.url}/_sink/arrivals", timeout=60).json()]

    def messages_to(self, address: str) -> list[email.message.EmailMessage]:
        found = httpx.get(f"{self.url}/_sink/messages", params={"to": address}, timeout=10)
        return [
            email.message_from_bytes(base64.b64decode(raw), policy=email.policy.default)  # type: ignore[misc]
            for raw in found.json()
        ]


# -- data ----------------------------------------------------------------------------------


def seed(dsn: str, subscribers: int, window_end: datetime, hour: int) -> None:
    """The topic; ``subscribers`` confirmed readers of it, daily at ``hour`` London time,
    whose last digest ended a day before ``window_end``; three articles in that day."""
    since = window_end - timedelta(days=1)
    arrived = window_end - timedelta(hours=19)
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO topics (slug, name, description, created_at)"
            " VALUES (%(topic)s, 'Data', 'Open data and statistics', %(since)s)",
            {"topic": TOPIC, "since": since},
        )
        connection.execute(
            """
            INSERT INTO subscribers (email, created_at, confirmed_at, timezone, daily_hour,
                                     weekly_day, weekly_hour)
            SELECT 'reader' || n || '@example.com', %(since)s, %(since)s, %(zone)s, %(hour)s,
                   0, 7
            FROM generate_series(1, %(count)s) AS n
            """,
            {"since": since, "zone": TIMEZONE, "hour": hour, "count": subscribers},
        )
        connection.execute(
            """
            INSERT INTO subscriptions (subscriber_id, topic_id, frequency, created_at,
                                       delivered_until)
            SELECT s.id, t.id, %(daily)s, %(since)s, %(since)s
            FROM subscribers s, topics t WHERE t.slug = %(topic)s
            """,
            {"since": since, "topic": TOPIC, "daily": Frequency.DAILY.value},
        )
        connection.execute(
            """
            INSERT INTO articles (guid, url, title, summary, author, published_at, source,
                                  created_at, revision, alerts_processed_at)
            SELECT 'https://news.example/hosts/' || n, 'https://news.example/hosts/' || n,
                   'Open data across government, part ' || n,
                   '<p>What departments publish, and how.</p>', 'Reporter', %(at)s, 'cli',
                   %(at)s, 0, %(at)s
            FROM generate_series(1, 3) AS n
            """,
            {"at": arrived},
        )
        connection.execute(
            """
            INSERT INTO article_topics (article_id, topic_id)
            SELECT a.id, t.id FROM articles a, topics t WHERE t.slug = %(topic)s
            """,
            {"topic": TOPIC},
        )


def backdate(dsn: str, address_: str, since: datetime) -> int:
    """Start the new reader's subscriptions at ``since``: a run may not end in the future,
    so the run this scenario can plan now ended before they confirmed."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        return connection.execute(
            """
            UPDATE subscriptions SET delivered_until = %(since)s, created_at = %(since)s
            WHERE subscriber_id = (SELECT id FROM subscribers WHERE email = %(email)s)
            """,
            {"since": since, "email": address_},
        ).rowcount


def outbox(dsn: str) -> list[tuple[str | None, str]]:
    """(Message-ID, status) of every email queued."""
    with psycopg.connect(dsn) as connection:
        return [
            (message_id, status)
            for message_id, status in connection.execute("SELECT message_id, status FROM outbox")
        ]


def sent_count(dsn: str) -> tuple[int, int, int]:
    """(emails, sent, failed)."""
    with psycopg.connect(dsn) as connection:
        row = connection.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = %(sent)s),"
            " count(*) FILTER (WHERE status = %(failed)s) FROM outbox",
            {"sent": OutboxStatus.SENT.value, "failed": OutboxStatus.FAILED.value},
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def worker_sent(fleet: Fleet, name: str, result: str = "sent") -> float:
    """What one worker has counted (``alertsvc_emails_total{result=…}``: sent, retried, …),
    read from its own Prometheus folder."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(fleet.root / name / "prometheus"))
    return sum(
        sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == "alertsvc_emails_total" and sample.labels.get("result") == result
    )


# -- the reader ----------------------------------------------------------------------------

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


class Browser:
    """A reader's browser on the root host. Session cookies are ``Secure`` in production
    and the web is reached over plain HTTP here (as a proxy in front of it would), so the
    cookies are kept by hand."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=15, follow_redirects=False)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        response = self.client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
        for cookie in response.cookies.jar:
            if cookie.value is not None:
                self.cookies[cookie.name] = cookie.value
        return response

    def form_token(self, path: str) -> str:
        page = self.request("GET", path)
        found = CSRF.search(page.text)
        if page.status_code != 200 or not found:
            raise RuntimeError(f"GET {path}: {page.status_code}, no CSRF token in the form")
        return found.group(1)

    def close(self) -> None:
        self.client.close()


def sign_up(browser: Browser, address_: str, hour: int) -> None:
    token = browser.form_token("/")
    reply = browser.request(
        "POST",
        "/",
        data={
            "csrf_token": token,
            "email": address_,
            "topics": [TOPIC],
            "frequency": "daily",
            "daily_hour": str(hour),
            "weekly_day": "0",
            "weekly_hour": "7",
            "timezone": TIMEZONE,
            "website": "",
        },
    )
    if reply.status_code != 303:
        raise RuntimeError(f"signup POST answered {reply.status_code}: {reply.text[:500]}")


def confirm_link(message: email.message.EmailMessage) -> str:
    """The confirmation link's path, from the message's text part."""
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    found = re.search(r"https://alerts\.example\.org(/confirm/[^\s<>\"]+)", text)
    if not found:
        raise RuntimeError("no confirmation link in the email")
    return found.group(1)


def confirm(browser: Browser, path: str) -> None:
    token = browser.form_token(path)
    reply = browser.request("POST", path, data={"csrf_token": token})
    if reply.status_code != 200:
        raise RuntimeError(f"confirm POST answered {reply.status_code}: {reply.text[:500]}")


# -- the scenario --------------------------------------------------------------------------


@contextlib.contextmanager
def temporary_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="as-hosts-"))
    root.chmod(0o755)  # the postgres user walks through it to its cluster
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def start_services(fleet: Fleet) -> Path:
    """PostgreSQL, Redis and the sink on the services host; returns the cluster's folder."""
    data = start_postgresql(fleet)
    fleet.start("redis", "services", [
        "redis-server", "--bind", SERVICES, "--port", str(REDIS_PORT), "--save", "",
        "--appendonly", "no", "--protected-mode", "no", "--dir", str(fleet.folder("redis")),
    ])  # fmt: skip
    fleet.start("sink", "services", [
        sys.executable, str(PROJECT_ROOT / "bench" / "_ses_sink.py"),
        "--host", SERVICES, "--port", str(SINK_PORT), "--keep-raw",
        "--latency", str(SES_LATENCY_S),
    ])  # fmt: skip
    for port in (REDIS_PORT, SINK_PORT):
        wait_until(lambda port=port: reachable(SERVICES, port), 15, f"{SERVICES}:{port}")
    with psycopg.connect(
        f"postgresql://postgres@{SERVICES}:{PG_PORT}/postgres", autocommit=True
    ) as connection:
        connection.execute(f"CREATE DATABASE {DATABASE}")
    return data


def start_web(fleet: Fleet, secret_key: str, web_workers: int) -> str:
    """gunicorn on the web host (it needs no schema to start); returns its URL."""
    fleet.start("web", "web", [
        sys.executable, "-m", "gunicorn", "--workers", str(web_workers),
        "--bind", f"{address('web')}:{WEB_PORT}", "--log-level", "warning", "wsgi:app",
    ], service_env(fleet, "web", secret_key), private_instance=True)  # fmt: skip
    return f"http://{address('web')}:{WEB_PORT}"


def start_fleet(fleet: Fleet, secret_key: str) -> None:
    """A worker on each worker host and the scheduler on its host (they check the schema
    at start); returns once the web accepts connections too."""
    for worker in ("worker1", "worker2"):
        env = service_env(fleet, worker, secret_key)
        fleet.alertsvc(worker, worker, ["worker", "--concurrency", str(THREADS)], env)
    fleet.alertsvc(
        "scheduler", "scheduler", ["scheduler"], service_env(fleet, "scheduler", secret_key)
    )
    wait_until(lambda: reachable(address("web"), WEB_PORT) or fleet.exited(), 30, "the web")
    if fleet.exited():
        raise RuntimeError(f"{fleet.exited()} exited: {fleet.tail(fleet.exited()[0])}")


def reader_signs_up(browser: Browser, sink: Sink, reader: str, hour: int) -> float:
    """Signup, the confirmation email at the sink, its link followed and the button pressed;
    returns the seconds from the signup POST to the email at the sink."""
    started = time.monotonic()
    sign_up(browser, reader, hour)
    found: list[email.message.EmailMessage] = []

    def arrived() -> bool:
        found[:] = sink.messages_to(reader)
        return bool(found)

    wait_until(arrived, 60, "the confirmation email at the sink")
    took = time.monotonic() - started
    confirm(browser, confirm_link(found[0]))
    return took


@dataclass
class Cut:
    """What happened around one worker's cut link."""

    seconds: float
    during: int = 0  # emails that reached the sink while the link was down
    during_s: float = 0.0  # the time between the two counts of the sink that gave ``during``
    recovery_s: float | None = None  # from the link's return to the worker's next send


def cut_link(fleet: Fleet, sink: Sink, dsn: str, emails: int, seconds: float) -> Cut:
    """Once a twentieth of the mail has gone, unplug ``CUT_WORKER`` for ``seconds``; then time
    how long it takes to send again (its own sent counter, from its Prometheus folder)."""
    cut = Cut(seconds)
    wait_until(lambda: sink.count() >= emails // 20, 60, "sending to get going")
    before = worker_sent(fleet, CUT_WORKER)
    at_cut, counted_at = sink.count(), time.monotonic()
    step(f"cutting {CUT_WORKER}'s link ({at_cut} emails at the sink, {before:.0f} from it)")
    set_link(CUT_WORKER, up=False)
    try:
        time.sleep(seconds)
        cut.during = sink.count() - at_cut
        cut.during_s = time.monotonic() - counted_at
    finally:
        set_link(CUT_WORKER, up=True)
    restored = time.monotonic()
    # Sends it had finished before the cut may be recorded only once the link is back.
    counted = worker_sent(fleet, CUT_WORKER)
    step(f"link restored: {cut.during} emails reached the sink meanwhile")
    while time.monotonic() - restored < 60 and sent_count(dsn)[1] < emails:
        if worker_sent(fleet, CUT_WORKER) > counted:
            cut.recovery_s = time.monotonic() - restored
            break
        time.sleep(0.2)
    again = (
        "never" if cut.recovery_s is None else f"{cut.recovery_s:.1f} s after the link came back"
    )
    step(f"{CUT_WORKER} sending again: {again}")
    return cut


def wait_for_drain(dsn: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        emails, sent, failed = sent_count(dsn)
        if sent + failed >= emails:
            return
        time.sleep(0.5)


def account(row: Row, fleet: Fleet, sink: Sink, dsn: str) -> None:
    """Lost, duplicated and errors: the outbox's Message-IDs against the sink's arrivals."""
    rows = outbox(dsn)
    arrivals = Counter(sink.message_ids())
    ours = {message_id for message_id, _ in rows if message_id}
    unsent = {message_id for message_id, status in rows if status != OutboxStatus.SENT}
    missing = {message_id for message_id in ours if message_id not in arrivals}
    strangers = [message_id for message_id in arrivals if message_id not in ours]
    row.lost = len(unsent | missing)
    row.duplicated = sum(count - 1 for count in arrivals.values() if count > 1)
    row.errors = len(strangers) + len(fleet.exited())
    sent = {name: worker_sent(fleet, name) for name in ("worker1", "worker2")}
    retried = {name: worker_sent(fleet, name, "retried") for name in ("worker1", "worker2")}
    row.notes.append(
        f"{len(rows):,} emails queued, {sum(arrivals.values()):,} at the sink; sent by "
        f"worker1 {sent['worker1']:.0f} ({retried['worker1']:.0f} retried later), "
        f"worker2 {sent['worker2']:.0f} ({retried['worker2']:.0f} retried later)"
    )
    if strangers:
        row.notes.append(f"{len(strangers)} Message-IDs at the sink that no outbox row has")
    if fleet.exited():
        row.notes.append(f"exited before the end: {', '.join(fleet.exited())}")
    step(f"{len(rows):,} queued: lost {row.lost}, duplicated {row.duplicated}, errors {row.errors}")


def run(short: bool) -> Row:
    # Enough mail that plenty is left to send once the link is back.
    subscribers = 1500 if short else 6000
    cut_s = 5.0 if short else 20.0
    row = Row(
        scenario=NAME,
        load=f"signup, confirm, {subscribers + 1:,}-email digest; 2 workers",
        faults=f"{CUT_WORKER}'s link cut {cut_s:g} s",
    )
    missing = [
        what
        for what, there in (
            ("root", os.geteuid() == 0),
            ("iproute2", shutil.which("ip")),
            ("redis-server", shutil.which("redis-server")),
            ("PostgreSQL's server binaries", postgresql_bin()),
        )
        if not there
    ]
    if missing:
        row.failures.append(f"needs {', '.join(missing)}")
        return row
    (PROJECT_ROOT / "instance").mkdir(exist_ok=True)
    step("removing leftovers of an earlier run (as- namespaces and links)")
    remove_network()
    with temporary_root() as root:
        fleet = Fleet(root)
        data: Path | None = None
        browser: Browser | None = None
        try:
            build_network()
            step(f"network: switch {SWITCH}, hosts {', '.join(map(namespace, HOSTS))}")
            secret_key = secrets.token_urlsafe(48)
            operator = service_env(fleet, "operator", secret_key)
            upgrade = fleet.operator("scheduler", operator)
            data = start_services(fleet)
            step(f"services on {SERVICES}: PostgreSQL :{PG_PORT}, Redis, the SES sink")
            dsn = f"postgresql://postgres@{SERVICES}:{PG_PORT}/{DATABASE}"
            web_url = start_web(fleet, secret_key, web_workers=1 if short else 2)
            upgrade.run(["db", "upgrade"])
            start_fleet(fleet, secret_key)
            planning = fleet.operator("scheduler", operator)
            window_end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            window_end -= timedelta(hours=6)
            hour = window_end.astimezone(ZoneInfo(TIMEZONE)).hour
            seed(dsn, subscribers, window_end, hour)
            step(f"schema; {subscribers:,} subscribers (daily, {hour}:00 London); processes up")

            sink = Sink(f"http://{SERVICES}:{SINK_PORT}")
            reader = f"hosts-{secrets.token_hex(4)}@example.com"
            browser = Browser(web_url)
            took = reader_signs_up(browser, sink, reader, hour)
            backdate(dsn, reader, window_end - timedelta(days=1))
            step(f"signed up ({took:.1f} s to the confirmation at the sink) and confirmed")

            at = window_end.isoformat()
            summary = planning.run(["digest", "run", "daily", "--at", at])
            step(f"digest run on the scheduler host: {summary.splitlines()[-1]}")
            queued = re.search(r"(\d+) emails? queued", summary)
            digests = int(queued.group(1)) if queued else 0
            row.require(
                digests == subscribers + 1, f"{digests} digests queued, not {subscribers + 1}"
            )

            emails = sent_count(dsn)[0]
            cut = cut_link(fleet, sink, dsn, emails, cut_s)
            row.recovery_s = cut.recovery_s
            wait_for_drain(dsn, emails * SES_LATENCY_S / THREADS + 60)
            account(row, fleet, sink, dsn)
            row.notes.append(
                f"signup to confirmation at the sink {took:.1f} s; while {CUT_WORKER} was cut "
                f"off {cut.during} emails reached the sink in {cut.during_s:.1f} s "
                f"({cut.during / cut.during_s:.0f}/s: the other worker alone)"
            )
            row.require(row.lost == 0, f"{row.lost} emails lost")
            row.require(row.duplicated == 0, f"{row.duplicated} emails sent twice")
            row.require(row.errors == 0, f"{row.errors} errors (unknown Message-IDs, exits)")
            row.require(cut.recovery_s is not None, f"{CUT_WORKER} never sent again after the cut")
            row.require(cut.during > 0, "nothing was sent while one worker was cut off")
            row.require(
                "scheduler leading" in fleet.tail("scheduler", 1_000_000),
                "the scheduler on its own host never took the lead",
            )
        finally:
            if not row.ok or sys.exc_info()[0] is not None:
                for name in fleet.processes:
                    print(f"--- the end of {name}'s log:\n{fleet.tail(name)}", flush=True)
            if browser is not None:
                browser.close()
            step("stopping the processes, the cluster and the network")
            fleet.stop_all()
            if data is not None:
                stop_postgresql(data)
            remove_network()
    return row
