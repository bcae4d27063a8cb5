"""Running ``alertsvc`` commands as real processes, the way an operator starts them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from alertsvc import PROJECT_ROOT
from tests.conftest import TEST_SECRET_KEY


def alertsvc_env(database_url: str, mail_dir: Path, **settings: str) -> dict[str, str]:
    """This environment with the service's settings pointed at the test database and mail dir."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ALERTSVC_")}
    env.update(
        ALERTSVC_ENV="testing",
        ALERTSVC_DATABASE_URL=database_url,
        ALERTSVC_MAIL_DIR=str(mail_dir),
        ALERTSVC_SECRET_KEY=TEST_SECRET_KEY,
        ALERTSVC_BASE_URL="https://alerts.test",
        ALERTSVC_MAIL_FROM="Public Technology alerts <alerts@alerts.test>",
    )
    env.update({f"ALERTSVC_{name}": value for name, value in settings.items()})
    env["PYTHONFAULTHANDLER"] = "1"
    return env


def start(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``uv run alertsvc …`` in its own process group, stdout and stderr to ``log_path``.

    Its own group lets ``kill`` reach the Python process under ``uv run`` too.
    """
    with log_path.open("wb") as log:
        return subprocess.Popen(
            ["uv", "run", "--quiet", "alertsvc", *args],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def exit_code(process: subprocess.Popen[bytes], timeout: float, log_path: Path) -> int:
    """Wait for the process to exit; if it does not, fail showing where it is stuck."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGABRT)  # faulthandler prints every thread's stack
        process.wait(timeout=10)
        raise AssertionError(
            f"still running {timeout}s later:\n{output(log_path)[-6000:]}"
        ) from None


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and everything it started, as a crash or ``kill -9`` would."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def wait_for(
    condition: Callable[[], object],
    timeout: float,
    what: str,
    processes: Sequence[subprocess.Popen[bytes]] = (),
    logs: Sequence[Path] = (),
) -> None:
    """Poll ``condition`` every 50 ms until it is true. Fail with ``what`` and the end of each
    log after ``timeout``, or at once if one of ``processes`` has exited."""
    deadline = time.monotonic() + timeout
    while not condition():
        exited = [process.args for process in processes if process.poll() is not None]
        if exited or time.monotonic() > deadline:
            tails = "".join(f"\n--- {log.name}:\n{output(log)[-3000:]}" for log in logs)
            problem = f"{exited} exited" if exited else f"timed out after {timeout}s"
            raise AssertionError(f"{problem} waiting for {what}{tails}")
        time.sleep(0.05)


def output(log_path: Path) -> str:
    return log_path.read_text(errors="replace")
