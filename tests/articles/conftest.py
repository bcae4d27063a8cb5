from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from pytest_httpserver import HTTPServer

FEED_SETTINGS: dict[str, Any] = {
    # pytest-httpserver listens on localhost: tests allow it, except the one that proves
    # loopback is refused by default (it uses the plain ``app``).
    "FEEDS_ALLOW_PRIVATE_ADDRESSES": True,
    # Generous: on a loaded machine a local feed can take over a second to answer.
    "FEEDS_TIMEOUT_SECONDS": 10.0,
    "FEEDS_MAX_BYTES": 300_000,
    "FEEDS_MAX_REDIRECTS": 3,
    "FEEDS_FAILURE_THRESHOLD": 2,
    "FEEDS_STALE_DAYS": 14,
}


@pytest.fixture(scope="session")
def make_httpserver() -> Iterator[HTTPServer]:
    """A threaded server, so a deliberately slow feed does not hold up the others."""
    server = HTTPServer(host="localhost", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture(scope="session")
def feeds_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(**FEED_SETTINGS)


@pytest.fixture
def cli(feeds_app: Flask):
    runner = feeds_app.test_cli_runner()

    def invoke(*args: str):
        return runner.invoke(args=list(args), catch_exceptions=False)

    return invoke
