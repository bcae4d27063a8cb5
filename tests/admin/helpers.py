"""Helpers for driving the admin pages through Flask's test client."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from tests.factories import OPERATOR_PASSWORD

# Either attribute order: WTForms writes name, type, value; hand-written forms may not.
_CSRF = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/admin/login") -> str:
    """The CSRF token a browser would get from loading ``path``."""
    response = client.get(path)
    match = _CSRF.search(response.get_data(as_text=True))
    assert match, f"no CSRF token on {path} ({response.status_code})"
    return match.group(1)


def sign_in(
    client: FlaskClient,
    email: str = "ops@publisher.example",
    password: str = OPERATOR_PASSWORD,
    **kwargs,
):
    """Submit the sign-in form as a person would; returns the response (not followed)."""
    data = {"email": email, "password": password, "csrf_token": csrf_token(client)}
    return client.post("/admin/login", data=data, **kwargs)


def post_form(
    client: FlaskClient,
    path: str,
    data: dict | None = None,
    *,
    csrf_from: str | None = None,
    **kwargs,
):
    """POST ``data`` to ``path`` with the CSRF token of the page ``csrf_from`` (default:
    the dashboard, which any signed-in operator can load)."""
    form = dict(data or {})
    form.setdefault("csrf_token", csrf_token(client, csrf_from or "/admin/"))
    return client.post(path, data=form, **kwargs)
