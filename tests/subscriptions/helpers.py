"""Helpers for driving the subscriber pages through Flask's test client."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner
from itsdangerous.encoding import base64_encode

from alertsvc import tokens
from alertsvc.tokens import TokenPurpose
from tests.mail import link_path

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


def post_signup(
    client: FlaskClient,
    email: str = "reader@example.com",
    *,
    follow_redirects: bool = True,
    **fields: Any,
):
    """Submit the signup form; by default follow its redirect to the page the reader sees."""
    data = signup_form(email, **fields)
    data.setdefault("csrf_token", csrf_token(client))
    return client.post("/", data=data, follow_redirects=follow_redirects)


def page_text(response) -> str:
    """The visible text of a page's main element, whitespace folded."""
    html = response.get_data(as_text=True)
    main = html[html.find("<main") : html.find("</main>")]
    text = re.sub(r"<[^>]+>", " ", main)
    return " ".join(text.split())


def post_form(client: FlaskClient, path: str, data: dict[str, Any] | None = None, **kwargs: Any):
    """POST to ``path`` as a browser would: with the CSRF token from loading ``path`` first.

    ``csrf_from`` names another page to take the token from (for a form shown elsewhere).
    """
    data = dict(data or {})
    data.setdefault("csrf_token", csrf_token(client, kwargs.pop("csrf_from", path)))
    return client.post(path, data=data, **kwargs)


@dataclass
class PageForm:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    """Collects each form's fields with the values a browser would submit unchanged."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[PageForm] = []
        self._open = False
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append(
                PageForm(attributes.get("action") or "", (attributes.get("method") or "get"))
            )
            self._open = True
        elif not self._open:
            return
        elif tag == "input" and attributes.get("name"):
            kind = attributes.get("type") or "text"
            if kind not in ("checkbox", "radio", "submit") or "checked" in attributes:
                self.forms[-1].fields[attributes["name"]] = attributes.get("value") or ""
        elif tag == "select":
            self._select = attributes.get("name")
        elif tag == "option" and self._select:
            fields = self.forms[-1].fields
            if self._select not in fields or "selected" in attributes:
                fields[self._select] = attributes.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = False
        elif tag == "select":
            self._select = None


def page_forms(response) -> list[PageForm]:
    parser = _FormParser()
    parser.feed(response.get_data(as_text=True))
    return parser.forms


def page_form(response, action: str, having: dict[str, str] | None = None) -> dict[str, str]:
    """The fields, as filled in, of the one form on the page posting to ``action`` (and holding
    the ``having`` values, to tell apart two forms posting to the same place)."""
    matches = [
        form
        for form in page_forms(response)
        if form.action == action
        and all(form.fields.get(name) == value for name, value in (having or {}).items())
    ]
    assert len(matches) == 1, f"expected one form posting to {action}, found {len(matches)}"
    return dict(matches[0].fields)


def submit(
    client: FlaskClient,
    page_path: str,
    changes: dict[str, Any] | None = None,
    *,
    action: str | None = None,
    having: dict[str, str] | None = None,
    follow_redirects: bool = False,
):
    """Load ``page_path``, change some fields of its form posting to ``action``, submit it."""
    action = action or page_path
    fields: dict[str, Any] = page_form(client.get(page_path), action, having)
    fields.update(changes or {})
    return client.post(action, data=fields, follow_redirects=follow_redirects)


def signed_path(
    app: Flask, purpose: TokenPurpose, payload: Any, *, age: timedelta = timedelta(0)
) -> str:
    """The path of a link for ``purpose``, signed by ``app`` as if ``age`` ago."""
    prefix = {
        TokenPurpose.CONFIRM: "/confirm/",
        TokenPurpose.MANAGE: "/manage/",
        TokenPurpose.UNSUBSCRIBE: "/unsubscribe/",
    }[purpose]
    with app.app_context():
        serializer = tokens._serializer(purpose)
    signed_at = int(time.time() - age.total_seconds())

    class SignedThen(TimestampSigner):
        def get_timestamp(self) -> int:
            return signed_at

    serializer.signer = SignedThen
    return prefix + serializer.dumps(payload)


def tampered(path: str, payload: Any) -> str:
    """The link edited to carry ``payload`` (someone else's id) under its original signature."""
    prefix, token = path.rsplit("/", 1)
    encoded = base64_encode(json.dumps(payload, separators=(",", ":"))).decode()
    return f"{prefix}/{encoded}.{token.split('.', 1)[1]}"


def manage_path(app: Flask, subscriber_id: int, *, age: timedelta = timedelta(0)) -> str:
    return signed_path(app, TokenPurpose.MANAGE, subscriber_id, age=age)


def unsubscribe_path(app: Flask, subscriber_id: int, topic_ids: list[int] | None) -> str:
    return signed_path(
        app, TokenPurpose.UNSUBSCRIBE, tokens.unsubscribe_payload(subscriber_id, topic_ids)
    )


def confirm(client: FlaskClient, path: str):
    """Open a confirm link and press its button."""
    return post_form(client, path)


def sign_up_for_link(client: FlaskClient, mailbox, email: str = "reader@example.com", **fields):
    """Sign up through the form; return the path of the confirm link that was emailed."""
    response = post_signup(client, email, **fields)
    assert response.status_code == 200, page_text(response)
    [message] = [m for m in mailbox.deliver() if m["To"] == email]
    return link_path(message, "/confirm/")
