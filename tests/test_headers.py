"""Security headers on every response: each route and method in the URL map, and errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from flask import Flask
from werkzeug.test import TestResponse

from alertsvc import PROJECT_ROOT
from tests.conftest import TEST_SECRET_KEY
from tests.processes import kill, output, wait_for

HTTPS = "https://alerts.test"
EVERY_RESPONSE = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'"
    ),
}
HSTS = "max-age=31536000"


@pytest.fixture
def production_app(app_with) -> Flask:
    return app_with(ENV="production")


def every_request(flask_app: Flask) -> Iterator[tuple[str, str]]:
    """(method, path) for each method of each rule, placeholders filled with ``1``."""
    adapter = flask_app.url_map.bind("alerts.test")
    for rule in flask_app.url_map.iter_rules():
        path = adapter.build(rule.endpoint, dict.fromkeys(rule.arguments, 1))
        for method in sorted(rule.methods or ()):
            yield method, path


def assert_secure_headers(response: TestResponse, *, hsts: bool) -> None:
    for name, value in EVERY_RESPONSE.items():
        assert response.headers.get(name) == value, name
    assert response.headers.get("Strict-Transport-Security") == (HSTS if hsts else None)
    assert "Server" not in response.headers


def test_every_route_in_production_carries_the_headers(production_app):
    client = production_app.test_client()
    requests = list(every_request(production_app))
    assert ("POST", "/api/v1/articles") in requests and ("GET", "/healthz") in requests
    # With no EMBED_ORIGINS the box refuses frames like every page (fails closed).
    assert ("GET", "/embed/register") in requests
    assert not any(path.startswith("/dev/") for _, path in requests)
    statuses = set()
    for method, path in requests:
        response = client.open(path, method=method, base_url=HTTPS)
        statuses.add(response.status_code)
        try:
            assert_secure_headers(response, hsts=True)
        except AssertionError as error:
            raise AssertionError(f"{method} {path} ({response.status_code}): {error}") from None
    assert {200, 400, 401, 404} <= statuses


EMBED_PATH = "/embed/register"


def test_only_the_embed_box_may_be_framed_and_only_by_the_configured_origins(app_with):
    """With ``EMBED_ORIGINS`` set, ``/embed/register`` (and no other route) names them in
    ``frame-ancestors`` and drops ``X-Frame-Options``; every other route still refuses
    every frame."""
    origins = "https://www.publisher.example,https://news.example:8443"
    flask_app = app_with(ENV="production", EMBED_ORIGINS=origins)
    client = flask_app.test_client()
    framed = []
    for method, path in every_request(flask_app):
        response = client.open(path, method=method, base_url=HTTPS)
        if path == EMBED_PATH and method in ("GET", "HEAD"):
            framed.append(method)
            assert response.status_code == 200
            assert response.headers["Content-Security-Policy"] == EVERY_RESPONSE[
                "Content-Security-Policy"
            ].replace(
                "frame-ancestors 'none'",
                "frame-ancestors https://www.publisher.example https://news.example:8443",
            )
            assert "X-Frame-Options" not in response.headers
            continue
        try:
            assert_secure_headers(response, hsts=True)
        except AssertionError as error:
            raise AssertionError(f"{method} {path} ({response.status_code}): {error}") from None
    assert framed == ["GET", "HEAD"]


def test_every_route_in_testing_carries_the_headers_but_not_hsts(app, client):
    requests = list(every_request(app))
    assert ("GET", "/dev/mail") in requests
    for method, path in requests:
        response = client.open(path, method=method)
        try:
            assert_secure_headers(response, hsts=False)
        except AssertionError as error:
            raise AssertionError(f"{method} {path} ({response.status_code}): {error}") from None


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/no-such-page", None, 404),
        ("GET", "/api/v1/no-such-thing", None, 404),
        ("DELETE", "/", None, 405),
        ("PUT", "/api/v1/articles", None, 405),
        ("POST", "/", b"x" * (65 * 1024), 413),
        ("POST", "/", b"email=reader%40example.com", 400),
    ],
    ids=["404", "api-404", "405", "api-405", "413", "csrf-400"],
)
def test_error_responses_carry_the_headers(production_app, method, path, body, status):
    response = production_app.test_client().open(
        path,
        method=method,
        data=body,
        content_type="application/x-www-form-urlencoded",
        base_url=HTTPS,
    )
    assert response.status_code == status
    assert_secure_headers(response, hsts=True)


def test_an_unexpected_error_page_carries_the_headers(production_app):
    def broken() -> str:
        raise RuntimeError("a bug")

    production_app.add_url_rule("/broken", view_func=broken)
    response = production_app.test_client().get("/broken", base_url=HTTPS)
    assert response.status_code == 500
    assert "Sorry, there is a problem with the service" in response.get_data(as_text=True)
    assert_secure_headers(response, hsts=True)


def test_production_session_cookie_is_secure(production_app):
    response = production_app.test_client().get("/", base_url=HTTPS)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("session=")
    assert "; Secure" in cookie and "; HttpOnly" in cookie and "; SameSite=Lax" in cookie


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gunicorn_does_not_name_the_software(tmp_path: Path, database_url: str, mail_dir: Path):
    """``gunicorn wsgi:app`` from the checkout, as deployed: its config drops ``Server``."""
    port = _free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("ALERTSVC_")}
    env.update(
        ALERTSVC_ENV="production",
        ALERTSVC_SECRET_KEY=TEST_SECRET_KEY,
        ALERTSVC_BASE_URL=HTTPS,
        ALERTSVC_DATABASE_URL=database_url,
        ALERTSVC_MAIL_DIR=str(mail_dir),
    )
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "wsgi:app"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/healthz"

    def answers() -> bool:
        try:
            return httpx.get(url).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(answers, 60, "gunicorn to answer /healthz", [process], [log])
        for path in ("/healthz", "/", "/no-such-page"):
            response = httpx.get(f"http://127.0.0.1:{port}{path}")
            assert "server" not in response.headers, (path, output(log)[-2000:])
            assert response.headers["Strict-Transport-Security"] == HSTS
            for name, value in EVERY_RESPONSE.items():
                assert response.headers[name] == value
    finally:
        kill(process)


def test_a_production_form_needs_the_same_origin_referer_our_policy_lets_browsers_send(
    production_app,
):
    """Over https Flask-WTF refuses a POST without a same-origin Referer; under
    ``Referrer-Policy: no-referrer`` browsers sent none, and every form failed."""
    client = production_app.test_client()
    page = client.get("/manage", base_url=HTTPS)
    assert page.headers["Referrer-Policy"] == "same-origin"
    html = page.get_data(as_text=True)
    token = html.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    form = {"csrf_token": token, "email": "reader@example.com"}
    without = client.post("/manage", data=form, base_url=HTTPS)
    assert without.status_code == 400
    same_origin = client.post(
        "/manage", data=form, base_url=HTTPS, headers={"Referer": f"{HTTPS}/manage"}
    )
    assert same_origin.status_code == 200
    assert "Check your email" in same_origin.get_data(as_text=True)
