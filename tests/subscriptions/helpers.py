"""Helpers for driving the subscriber pages through Flask's test client."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient

_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/") -> str:
    """The CSRF token a person's browser would get from loading ``path``."""
    response = client.get(path)
    match = _CSRF.search(response.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def signup_form(email: str = "reader@example.com", **fields: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "email": email,
        "topics": ["data"],
        "frequency": "daily",
        "daily_hour": "7",
        "weekly_day": "0",
        "weekly_hour": "7",
        "timezone": "Europe/London",
    }
    form.update(fields)
    return form


def post_signup(client: FlaskClient, email: str = "reader@example.com", **fields: Any):
    data = signup_form(email, **fields)
    data.setdefault("csrf_token", csrf_token(client))
    return client.post("/", data=data)


def page_text(response) -> str:
    """The visible text of a page's main element, whitespace folded."""
    html = response.get_data(as_text=True)
    main = html[html.find("<main") : html.find("</main>")]
    text = re.sub(r"<[^>]+>", " ", main)
    return " ".join(text.split())
