"""Shared pieces for the scripts in bench/: a fresh database, server processes, wrk.

Not a benchmark itself (the leading underscore keeps ``bench/run.py`` from running it).
Every process started here is stopped by the context manager that started it, on error too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = PROJECT_ROOT / "bench"

RESULT_MARKER = "BENCH_RESULT "
CSRF_FIELD = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


_STARTED = time.monotonic()


def step(message: str) -> None:
    """A progress line, with seconds since the script started."""
    print(f"[{time.monotonic() - _STARTED:5.1f} s] {message}", flush=True)


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM (and Ctrl-C) into SystemExit so ``finally`` blocks stop what the script
    started. Signals after the first are ignored, so they cannot cut that cleanup short."""

    def _raise(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGINT, _raise)


# -- database ------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_database(url: str, *, keep: bool = False) -> Iterator[str]:
    """Drop and create the database named in ``url``; drop it again afterwards unless ``keep``.

    Connects to the server's ``postgres`` database to do so, as the URL's user.
    """
    target = make_url(url)
    name = target.database
    if not name or target.get_backend_name() != "postgresql":
        raise SystemExit(f"need a postgresql URL naming a database, not {url!r}")
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    quoted = admin.dialect.identifier_preparer.quote(name)
    try:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
            connection.execute(text(f"CREATE DATABASE {quoted}"))
        yield url
    finally:
        if not keep:
            with admin.connect() as connection:
                connection.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        admin.dispose()


def render_url(url: str | URL) -> str:
    return make_url(url).render_as_string(hide_password=False)


def alertsvc_command(args: list[str], env: Mapping[str, str]) -> None:
    """Run ``alertsvc ARGS`` from the project root; show its output only if it fails."""
    # Through ``-c`` rather than the installed entry point, so the package imported is the
    # one in this tree (sys.path[0] is the working directory).
    result = subprocess.run(
        [sys.executable, "-c", "from alertsvc.cli import main; main()", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"alertsvc {' '.join(args)} failed with exit code {result.returncode}")


# -- servers -------------------------------------------------------------------------------


def insert_articles(
    connection: psycopg.Connection, at: datetime, count: int, summary_end: str
) -> int:
    """``count`` new articles numbered on from the highest id, published, arrived and
    processed at ``at``, each summary ending in ``summary_end``: the first one's id. Which
    topics they are in is the caller's."""
    first = connection.execute("SELECT coalesce(max(id), 0) + 1 FROM articles").fetchone()[0]
    connection.execute(
        """
        INSERT INTO articles (guid, url, title, summary, author, published_at, source,
                              created_at, revision, alerts_processed_at)
        SELECT 'https://news.example/' || n, 'https://news.example/' || n,
               'Article number ' || n || ' about public sector technology',
               '<p>A summary of article ' || n || %(summary_end)s, 'Reporter', %(at)s, 'cli',
               %(at)s, 0, %(at)s
        FROM generate_series(%(first)s, %(first)s + %(count)s - 1) AS n
        """,
        {"at": at, "first": first, "count": count, "summary_end": summary_end},
    )
    return first


def browser_session(base_url: str) -> tuple[str, str] | None:
    """What a browser holds after loading the signup form at ``base_url``: its session
    cookie (as a ``Cookie`` header's value) and CSRF token (CSRF stays on); None if the page
    gave either not."""
    response = httpx.get(base_url + "/", timeout=10.0)
    response.raise_for_status()
    match = CSRF_FIELD.search(response.text)
    if match is None or "session" not in response.cookies:
        return None
    return f"session={response.cookies['session']}", match.group(1)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Server:
    url: str
    pid: int  # the gunicorn master; its children are the workers
    log: tempfile._TemporaryFileWrapper

    def log_tail(self, chars: int = 4000) -> str:
        """The end of what gunicorn and the app wrote, for when something went wrong."""
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-chars:]


@contextlib.contextmanager
def gunicorn(
    app: str,
    *,
    env: Mapping[str, str],
    workers: int = 2,
    chdir: Path = PROJECT_ROOT,
    ready_path: str = "/",
    ready_timeout: float = 30.0,
) -> Iterator[Server]:
    """Serve ``app`` (``module:name``) with gunicorn on a free loopback port.

    Returns once ``ready_path`` answers 200. On leaving, the master is asked to stop
    (SIGTERM: workers finish their request), then its whole process group is killed if it
    has not stopped within ten seconds.
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in the finally below
        mode="w+", prefix="bench-gunicorn-", suffix=".log"
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(chdir),
            "--log-level",
            "warning",
            app,
        ],
        cwd=chdir,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_ready(process, base_url + ready_path, ready_timeout, log)
        yield Server(base_url, process.pid, log)
    finally:
        _stop(process)
        log.close()


def _wait_ready(
    process: subprocess.Popen[bytes], url: str, timeout: float, log: tempfile._TemporaryFileWrapper
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            sys.stderr.write(log.read())
            raise SystemExit(f"gunicorn exited with code {process.returncode} before serving")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(0.2)
    log.seek(0)
    sys.stderr.write(log.read())
    raise SystemExit(f"{url} did not answer 200 within {timeout:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
    # The group is the one this script created for the master (start_new_session=True):
    # it holds the master and its workers and nothing else.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


# -- load ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run measured. Latencies in milliseconds."""

    requests: int  # responses received in the duration
    sent: int  # requests written, including those still in flight when wrk stopped
    non_2xx: int
    socket_errors: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    client_cpu_s: float  # CPU time wrk itself used

    @property
    def per_second(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def wrk(
    url: str,
    script: Path,
    script_args: list[str],
    *,
    duration_s: float,
    connections: int,
    threads: int = 1,
    timeout_s: float = 5.0,
) -> LoadResult:
    """Drive ``url`` with wrk and a Lua script whose ``done()`` prints a result line.

    The script prints one line ``BENCH_RESULT {json}`` with the fields of ``LoadResult``
    (latencies in microseconds); ``bench/_form_post.lua`` is the model.
    """
    command = [
        "wrk",
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={duration_s:g}s",
        f"--timeout={timeout_s:g}s",
        f"--script={script}",
        url,
        "--",
        *script_args,
    ]
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run scripts/ensure-bench-tools.sh")
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=duration_s + timeout_s + 30,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if result.returncode != 0 or not lines:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"wrk failed (exit code {result.returncode})")
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    data = json.loads(lines[-1][len(RESULT_MARKER) :])
    return LoadResult(
        requests=data["requests"],
        sent=data["sent"],
        non_2xx=data["non_2xx"],
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        duration_s=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        mean_ms=data["mean_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        client_cpu_s=(children_after.ru_utime + children_after.ru_stime)
        - (children_before.ru_utime + children_before.ru_stime),
    )


def wait_for_count(count: Callable[[], int], expected: int, timeout_s: float = 10.0) -> int:
    """Poll ``count()`` until it reaches ``expected`` or ``timeout_s`` passes; return the last.

    Requests still in flight when wrk stopped are finished by the server afterwards.
    """
    deadline = time.monotonic() + timeout_s
    last = count()
    while last < expected and time.monotonic() < deadline:
        time.sleep(0.2)
        last = count()
    return last


# -- CPU accounting ------------------------------------------------------------------------

ProcessFilter = Callable[[int, int, str], bool]  # (pid, parent pid, command line) -> bool
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _processes() -> Iterator[tuple[int, int, str, float]]:
    """(pid, parent pid, command line, CPU seconds so far) of every readable process."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
        except OSError:
            continue
        # Fields after the parenthesised command name: state, ppid, ... utime (14), stime (15).
        fields = stat.rsplit(")", 1)[1].split()
        seconds = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
        yield int(entry.name), int(fields[1]), cmdline.replace(b"\0", b" ").decode(), seconds


class CpuMeter:
    """CPU seconds that groups of processes used inside a ``with`` block.

    Wall-clock figures on a machine shared with other work move with that work; the CPU
    each request cost the app, the database and the rest moves much less.
    """

    def __init__(self, groups: Mapping[str, ProcessFilter]) -> None:
        self.groups = groups
        self.seconds: dict[str, float] = {}
        self._before: dict[str, dict[int, float]] = {}

    def _snapshot(self) -> dict[str, dict[int, float]]:
        taken: dict[str, dict[int, float]] = {name: {} for name in self.groups}
        for pid, ppid, cmdline, seconds in _processes():
            for name, belongs in self.groups.items():
                if belongs(pid, ppid, cmdline):
                    taken[name][pid] = seconds
        return taken

    def __enter__(self) -> CpuMeter:
        self._before = self._snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        after = self._snapshot()
        self.seconds = {
            name: sum(
                seconds - self._before[name].get(pid, 0.0) for pid, seconds in after[name].items()
            )
            for name in self.groups
        }


def children_of(pid: int) -> ProcessFilter:
    return lambda _pid, ppid, _cmdline: ppid == pid


def postgres_backends_of(database: str) -> ProcessFilter:
    """The server processes serving connections to ``database`` (PostgreSQL on this host)."""
    return lambda _pid, _ppid, cmdline: (
        cmdline.startswith("postgres: ") and (f" {database} " in cmdline)
    )


def command_starts(prefix: str) -> ProcessFilter:
    return lambda _pid, _ppid, cmdline: cmdline.startswith(prefix)
