"""Logs: JSON lines (or text), a request id on each, no email address in clear."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import structlog
from flask import Flask

from alertsvc import PROJECT_ROOT
from alertsvc.config import ConfigurationError
from alertsvc.logs import EmailRedactor, job_context
from tests.conftest import TEST_SECRET_KEY
from tests.factories import seed_topics
from tests.processes import kill, output, wait_for
from tests.subscriptions.helpers import post_signup


@pytest.fixture
def logging_app(
    app_with: Callable[..., Flask],
) -> Iterator[Callable[..., tuple[Flask, io.StringIO]]]:
    """An app with these settings, and what its log handler writes while the test runs.

    Logging is the process's: the latest app made sets it up.
    """
    swapped: list[tuple[logging.Handler, object]] = []

    def make(**settings: object) -> tuple[Flask, io.StringIO]:
        made = app_with(**settings)
        handler = next(h for h in logging.getLogger().handlers if h.get_name() == "alertsvc")
        stream = io.StringIO()
        swapped.append((handler, handler.setStream(stream)))
        return made, stream

    yield make
    for handler, previous in swapped:
        handler.setStream(previous)


def json_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_a_signup_logs_json_with_a_request_id_and_no_address(logging_app) -> None:
    app, log_output = logging_app(LOG_FORMAT="json")
    seed_topics(app)
    client = app.test_client()

    response = post_signup(
        client, "Jo.Reader+alerts@Example.org", follow_redirects=False, topics=["data"]
    )
    assert response.status_code == 303
    request_id = response.headers["X-Request-ID"]

    lines = json_lines(log_output)
    signups = [line for line in lines if line["event"].startswith("signup from")]
    assert len(signups) == 1, lines
    line = signups[0]
    assert line["request_id"] == request_id
    assert line["level"] == "info"
    assert line["logger"] == "alertsvc.subscriptions.routes"
    assert "timestamp" in line
    assert "@" not in log_output.getvalue()
    assert "reader" not in log_output.getvalue().lower()
    assert "signup from email:" in line["event"]


def test_a_sane_request_id_is_kept_and_a_strange_one_replaced(app: Flask) -> None:
    client = app.test_client()
    kept = client.get("/healthz", headers={"X-Request-ID": "lb-1234.abc"})
    assert kept.headers["X-Request-ID"] == "lb-1234.abc"
    replaced = client.get("/healthz", headers={"X-Request-ID": 'x" {"level":"error"}'})
    assert replaced.headers["X-Request-ID"] != 'x" {"level":"error"}'
    assert len(replaced.headers["X-Request-ID"]) == 32
    fresh = client.get("/healthz")
    assert fresh.headers["X-Request-ID"] not in (replaced.headers["X-Request-ID"], "lb-1234.abc")


def test_every_field_is_redacted_and_an_address_keeps_one_mark() -> None:
    redact = EmailRedactor("key")
    event = redact(
        None,
        "info",
        {
            "event": "bounce for a@example.org",
            "to": ["A@Example.org", {"cc": "b%40example.net"}],
            "count": 3,
            "error": ValueError("550 <c@example.com> rejected"),
        },
    )
    text = json.dumps(event)
    assert "@" not in text and "%40" not in text
    assert event["event"].split()[-1] == event["to"][0]  # the same address, the same mark
    assert event["count"] == 3
    assert event["to"][1]["cc"].startswith("email:")


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        # A search for part of an address was logged in clear (no dot in the domain).
        (
            '127.0.0.1 - - "GET /admin/subscribers?q=due1@example HTTP/1.1" 200 -',
            ['127.0.0.1 - - "GET /admin/subscribers?q=', ' HTTP/1.1" 200 -'],
        ),
        # The whole path and query were swallowed into the mark.
        (
            "GET /admin/subscribers?q=due1%40example.org&page=2 HTTP/1.1",
            ["GET /admin/subscribers?q=", "&page=2 HTTP/1.1"],
        ),
        ("to=due1@example;cc=@example.org,x", ["to=", ";cc=", ",x"]),
        ("550 <c@example.com> (d@example.com) [e@example] {f@x}", ["550 <", "> (", ") [", "] {"]),
        ("sent to 'g@example.org'.", ["sent to '", "'."]),
        ("bounce for h@example.org.", ["bounce for ", "."]),
        ("GET /manage?email=o'brien@example.org&x=1", ["GET /manage?email=", "&x=1"]),
    ],
)
def test_anything_with_an_at_sign_is_redacted_and_the_rest_of_the_line_kept(
    line: str, kept: list[str]
) -> None:
    redacted = EmailRedactor("key").redact(line)
    assert "@" not in redacted and "%40" not in redacted
    assert "email:" in redacted
    position = 0
    for piece in kept:
        found = redacted.find(piece, position)
        assert found >= 0, (piece, redacted)
        position = found + len(piece)


@pytest.mark.parametrize(
    "address",
    ["o'brien@example.org", "jo.o'neil@example.org", "a/b@example.org", "a&b@example.org"],
)
def test_no_part_of_a_local_part_is_left_in_clear(address: str) -> None:
    """' / & are allowed in a local part; the mark covers them, not just what follows. (A
    ``?`` before the @ reads as a URL's query, whose key and path stay in clear.)"""
    redact = EmailRedactor("key")
    line = f"signup from {address} for data"
    assert redact.redact(line) == f"signup from {redact.mark(address)} for data"


def test_a_partial_address_keeps_the_same_mark_plain_or_encoded() -> None:
    redact = EmailRedactor("key").redact
    assert redact("q=due1@example") == redact("q=DUE1%40example")
    assert redact("an @ on its own") == "an @ on its own"


def test_text_logs_outside_production_and_jobs_carry_their_name(logging_app) -> None:
    _, log_output = logging_app()
    with job_context("digest_run", run_id=12):
        logging.getLogger("alertsvc.test").warning("planned for x@example.org")
        structlog.get_logger("alertsvc.test").info("structured", reader="y@example.org")
    text = log_output.getvalue()
    assert "job=digest_run" in text and "run_id=12" in text
    assert "planned for email:" in text
    assert "reader=email:" in text
    assert "@" not in text
    assert not text.lstrip().startswith("{")


def test_tracebacks_are_redacted_too(logging_app) -> None:
    _, stream = logging_app(LOG_FORMAT="json")
    try:
        raise RuntimeError("could not send to z@example.org")
    except RuntimeError:
        logging.getLogger("alertsvc.test").exception("send failed")
    (line,) = json_lines(stream)
    assert "RuntimeError" in line["exception"]
    assert "@" not in stream.getvalue()


def test_an_unknown_log_format_is_refused(app_with: Callable[..., Flask]) -> None:
    with pytest.raises(ConfigurationError, match="ALERTSVC_LOG_FORMAT"):
        app_with(LOG_FORMAT="xml")


def test_gunicorn_writes_its_own_lines_in_the_apps_format(
    tmp_path: Path, database_url: str, mail_dir: Path
) -> None:
    """``gunicorn wsgi:app`` in production, access log on: every line it and the app write is
    a JSON object, gunicorn's own included, and an address in a logged URL is redacted."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {name: value for name, value in os.environ.items() if not name.startswith("ALERTSVC_")}
    env.update(
        ALERTSVC_ENV="production",
        ALERTSVC_SECRET_KEY=TEST_SECRET_KEY,
        ALERTSVC_BASE_URL="https://alerts.example.org",
        ALERTSVC_DATABASE_URL=database_url,
        ALERTSVC_MAIL_DIR=str(mail_dir),
    )
    log = tmp_path / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [*command, "--access-logfile", "-", "wsgi:app"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def answers() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(answers, 60, "gunicorn to answer /healthz", [process], [log])
        httpx.get(f"http://127.0.0.1:{port}/manage?email=o'brien@example.org")
        # gunicorn logs a request after its response has gone: wait for the line, then kill
        wait_for(lambda: "/manage?" in output(log), 30, "the access line", [process], [log])
    finally:
        kill(process)
    lines = [line for line in output(log).splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    said = {(event["logger"], event["event"].split(" ")[0]) for event in events}
    assert ("gunicorn.error", "Listening") in said, lines
    access = [e["event"] for e in events if e["logger"] == "gunicorn.access"]
    assert any("/manage?email=email:" in line for line in access), access
    assert "brien" not in output(log)
