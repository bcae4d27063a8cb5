"""The load scenario's batch side (workers, planner, sink) really yields the CPU to the web.

With the kernel's autogroup scheduling, a process in a session of its own competes as its
session: ``nice`` alone does not weigh against other sessions. The scenario's processes are
started in new sessions, so the session must carry the niceness too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.reliability._service_processes import _popen_niced, kill

AUTOGROUP = Path("/proc/self/autogroup")


def test_a_niced_batch_process_is_niced_as_a_session_too() -> None:
    if not AUTOGROUP.exists():
        pytest.skip("this kernel has no autogroup scheduling: nice alone is enough")
    process = _popen_niced(
        [sys.executable, "-c", "import time; time.sleep(30)"],
        19,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        assert os.getpgid(process.pid) == process.pid  # its own group, for killpg
        assert os.getpriority(os.PRIO_PROCESS, process.pid) == 19
        group = Path(f"/proc/{process.pid}/autogroup").read_text()
        assert group != AUTOGROUP.read_text(), "not a session of its own"
        assert group.split()[-1] == "19", group
    finally:
        kill(process)
