"""Pieces every scenario uses: where PostgreSQL is, and a database of the scenario's own."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from sqlalchemy.engine import make_url

from bench._support import fresh_database

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def postgres_server() -> str:
    """The PostgreSQL server scenarios create their databases on: the test suite's
    (``ALERTSVC_TEST_DATABASE_URL``) inside ``make test``, else the local one."""
    url = os.environ.get("ALERTSVC_TEST_DATABASE_URL") or DEFAULT_SERVER
    return make_url(url).set(database="postgres").render_as_string(hide_password=False)


@contextlib.contextmanager
def scenario_database(name: str) -> Iterator[str]:
    """A fresh database ``alertsvc_reliability_<name>``, dropped afterwards."""
    url = make_url(postgres_server()).set(database=f"alertsvc_reliability_{name}")
    with fresh_database(url.render_as_string(hide_password=False)) as fresh:
        yield fresh


def busiest_window(times: list[float], seconds: float = 1.0) -> tuple[int, float]:
    """The most events in any window ``[t, t + seconds)`` and where it starts. Every busiest
    window can be moved to start at an event without losing one, so only those are tried."""
    times = sorted(times)
    best, start, end = 0, 0.0, 0
    for first, at in enumerate(times):
        while end < len(times) and times[end] < at + seconds:
            end += 1
        if end - first > best:
            best, start = end - first, at
    return best, start
