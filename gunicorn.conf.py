"""gunicorn settings for the web process, read by ``gunicorn wsgi:app`` from this folder.

The settings are checked here, in the master, before it binds or forks: a forgotten
setting stops gunicorn with one line saying what to set, instead of every worker failing
to boot with a traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from gunicorn.glogging import Logger
from gunicorn.http import wsgi as gunicorn_wsgi
from prometheus_client import multiprocess

from alertsvc import PROJECT_ROOT
from alertsvc.config import ConfigurationError, check_settings
from alertsvc.logs import log_formatter

# Multiprocess metrics need their folder before any process counts anything (the settings
# check below requires it). It is not emptied here: a worker or scheduler on this machine may
# already be counting into it. Empty it when the machine's processes start together (``make
# run`` does).
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    with contextlib.suppress(OSError):
        Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

try:
    _settings = check_settings(PROJECT_ROOT / "instance")
except ConfigurationError as error:
    sys.exit(f"Error: {error}")

_app_format = log_formatter(_settings)


class _AppFormatLogger(Logger):
    """gunicorn's own lines (the master's, a worker's boot, timeout and crash, and the access
    log if turned on) in the app's format: JSON objects in production, addresses redacted,
    so that one parser reads the web's whole output. Where they go is gunicorn's to say
    (``--error-logfile``, ``--access-logfile``); only the format changes."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(_app_format)


logger_class = _AppFormatLogger

_default_headers = gunicorn_wsgi.Response.default_headers


def _without_server_header(self: gunicorn_wsgi.Response) -> list[str]:
    """gunicorn always sends ``Server: gunicorn`` and has no setting to stop it; naming the
    software only helps someone match it against a list of known flaws (RFC 9110 §10.2.4
    makes the header optional)."""
    return [line for line in _default_headers(self) if not line.lower().startswith("server:")]


gunicorn_wsgi.Response.default_headers = _without_server_header  # type: ignore[method-assign]

# gunicorn's runtime control socket sits at one path per user ($XDG_RUNTIME_DIR or
# ~/.gunicorn), which several web processes on one machine would fight over; the process
# manager's signals (TERM, HUP, TTIN/TTOU) do the same job.
control_socket_disable = True


def child_exit(server: Any, worker: Any) -> None:
    """A web worker that exits leaves its counts (they still add up) but not live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
