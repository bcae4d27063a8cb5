"""alertsvc processes (scheduler, worker, CLI) and the SES sink, started the way an operator
starts them, each in a process group of its own that the scenario ends however it ends.

The one home of the reliability scenarios' process code: ``_outage_support`` and ``_sending``
build their environments, start and stop their processes with what is here."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from bench._support import BENCH_DIR, PROJECT_ROOT, free_port

SECRET_KEY = "reliability-secret-key-" + "x" * 32  # signs nothing that outlives the run
AWS_ENV = {"AWS_ACCESS_KEY_ID": "reliability", "AWS_SECRET_ACCESS_KEY": "reliability"}
SES_REGION = "eu-west-2"
SINK_SCRIPT = BENCH_DIR / "_ses_sink.py"


def clean_env(settings: Mapping[str, object] | None = None, **values: str) -> dict[str, str]:
    """This process's environment without any ``ALERTSVC_*`` of its own (the test suite's),
    with the sink's fake AWS credentials and ``values``, plus ``ALERTSVC_<name>`` for each of
    ``settings``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ALERTSVC_")}
    env.update(AWS_ENV)
    env.update(values)
    env.update({f"ALERTSVC_{name}": str(value) for name, value in (settings or {}).items()})
    return env


def service_env(database_url: str, **settings: str) -> dict[str, str]:
    """Production settings (a real key, an https base URL) on ``database_url``, plus
    ``ALERTSVC_<name>`` for each of ``settings``; nothing inherited from this process's own
    ``ALERTSVC_*`` variables."""
    return clean_env(
        settings,
        ALERTSVC_ENV="production",
        ALERTSVC_DATABASE_URL=database_url,
        ALERTSVC_SECRET_KEY=SECRET_KEY,
        ALERTSVC_BASE_URL="https://alerts.reliability.invalid",
        ALERTSVC_MAIL_FROM="Public Technology alerts <alerts@alerts.reliability.invalid>",
    )


def ses_env(
    database_url: str,
    sink_url: str | None,
    secret_key: str,
    settings: Mapping[str, object],
    **values: str,
) -> dict[str, str]:
    """Development settings on ``database_url`` with the ses transport into the sink at
    ``sink_url`` (none: SES's own endpoint), a fixed key, ``values`` and ``settings``."""
    endpoint = {"ALERTSVC_SES_ENDPOINT_URL": sink_url} if sink_url is not None else {}
    return clean_env(
        settings,
        ALERTSVC_ENV="development",
        ALERTSVC_SECRET_KEY=secret_key,
        ALERTSVC_DATABASE_URL=database_url,
        ALERTSVC_BASE_URL="https://alerts.example.org",
        ALERTSVC_MAIL_TRANSPORT="ses",
        ALERTSVC_SES_REGION=SES_REGION,
        PYTHONFAULTHANDLER="1",
        **endpoint,
        **values,
    )


def _popen_niced(command: list[str], nice: int, **options: Any) -> subprocess.Popen[bytes]:
    """``command`` in a new session (and process group), at ``nice``.

    With the kernel's autogroup scheduling on (``/proc/sys/kernel/sched_autogroup_enabled``,
    the default on most distributions), each session is a scheduling group that shares the
    CPU with every other as a whole, and a process's niceness only counts inside its own
    group: ``nice -n 10`` alone left a worker in a session of its own as strong as all of
    gunicorn's workers together. The session's niceness, in ``/proc/<pid>/autogroup``, is
    what weighs against other sessions, so both are set.
    """
    process = subprocess.Popen(command, start_new_session=True, **options)
    if nice:
        os.setpriority(os.PRIO_PROCESS, process.pid, nice)
        with contextlib.suppress(OSError):  # no autogroup scheduling: the niceness is enough
            Path(f"/proc/{process.pid}/autogroup").write_text(str(nice))
    return process


def start_alertsvc(
    args: list[str], env: Mapping[str, str], log: Path, *, nice: int = 0
) -> subprocess.Popen[bytes]:
    """``alertsvc ARGS`` as a Python process of its own, at ``nice`` (``_popen_niced``), in a
    new session and process group, output to ``log``."""
    with log.open("ab") as out:
        return _popen_niced(
            [sys.executable, "-c", "from alertsvc.cli import main; main()", *args],
            nice,
            cwd=PROJECT_ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def kill(process: subprocess.Popen[bytes], wait_s: float = 10.0) -> None:
    """SIGKILL the process's group, as a crash or ``kill -9`` would, and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=wait_s)


def stop(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM (a warm stop), then SIGKILL to the group after ``grace_s``."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace_s)
    kill(process)


def _terminate_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)


def stop_group(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM the process's group, then SIGKILL it if it has not gone within ``timeout``."""
    if process.poll() is None:
        _terminate_group(process)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    kill(process, wait_s=5)


def stop_groups(processes: list[subprocess.Popen[bytes]], timeout: float = 20.0) -> None:
    """``stop_group`` for each, all asked at once so that their waits overlap."""
    for process in processes:
        _terminate_group(process)
    for process in processes:
        stop_group(process, timeout)


def tail(log: Path, chars: int = 3000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


@contextlib.contextmanager
def sink_process(
    *options: str,
    log: Path | None = None,
    output: int | None = subprocess.DEVNULL,
    nice: int = 0,
    start_s: float = 20.0,
    stop: Callable[[subprocess.Popen[bytes]], None] = stop_group,
) -> Iterator[str]:
    """``bench/_ses_sink.py OPTIONS`` on a free port (at ``nice``), in a group of its own:
    its base URL, once it answers; stopped with ``stop`` on leaving. Its output goes to
    ``log`` if given, else to ``output`` (``None``: this process's own)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, str(SINK_SCRIPT), "--port", str(port), *options]
    with contextlib.ExitStack() as files:
        out = files.enter_context(log.open("ab")) if log is not None else output
        process = _popen_niced(
            command,
            nice,
            stdout=out,
            stderr=subprocess.STDOUT if log is not None else output,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + start_s
        while True:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{url}/_sink/stats", timeout=1).raise_for_status()
                break
            if process.poll() is not None or time.monotonic() > deadline:
                said = f":\n{tail(log)}" if log is not None else ""
                raise RuntimeError(f"the SES sink did not start{said}")
            time.sleep(0.1)
        yield url
    finally:
        stop(process)


@contextlib.contextmanager
def ses_sink(log: Path, *, nice: int = 0) -> Iterator[str]:
    """``bench/_ses_sink.py`` on a free port (at ``nice``): its base URL, once it answers."""
    with sink_process(
        log=log, nice=nice, start_s=15, stop=lambda process: stop(process, grace_s=5)
    ) as url:
        yield url


def sink_count(url: str) -> int:
    """Messages the sink has accepted."""
    return int(httpx.get(f"{url}/_sink/stats", timeout=5).json()["count"])
