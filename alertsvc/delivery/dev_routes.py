"""``/dev/mail``: the file transport's mailbox, for development only.

Registered only when ``ALERTSVC_ENV`` is development or testing, and only with the ``file``
transport.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, render_template
from markupsafe import Markup, escape

from alertsvc.extensions import limiter

bp = Blueprint("dev_mail", __name__, url_prefix="/dev/mail")
limiter.exempt(bp)

_URL = re.compile(r"https?://[^\s<>\"']+")


def _mail_dir() -> Path:
    return Path(current_app.config["MAIL_DIR"])


def _read(path: Path) -> EmailMessage:
    with path.open("rb") as handle:
        return email.message_from_binary_file(handle, policy=email.policy.default)  # type: ignore[return-value]


def _find(name: str) -> Path:
    """Only names that the folder lists: no path tricks."""
    for path in _mail_dir().glob("*.eml"):
        if path.name == name:
            return path
    abort(404)


def linkify(text: str) -> Markup:
    escaped = str(escape(text))
    return Markup(_URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped))  # noqa: S704


@bp.get("")
def mailbox() -> str:
    paths = sorted(_mail_dir().glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True)
    messages = []
    for path in paths[:200]:
        message = _read(path)
        messages.append(
            {
                "name": path.name,
                "to": message["To"],
                "subject": message["Subject"],
                "date": message["Date"],
            }
        )
    return render_template("web/dev_mailbox.html", messages=messages)


@bp.get("/<name>")
def show(name: str) -> str:
    message = _read(_find(name))
    text = message.get_body(preferencelist=("plain",))
    return render_template(
        "web/dev_message.html",
        name=name,
        headers=list(message.items()),
        text=linkify(text.get_content() if text else ""),
    )


@bp.get("/<name>/html")
def show_html(name: str) -> Response:
    message = _read(_find(name))
    html = message.get_body(preferencelist=("html",))
    response = Response(html.get_content() if html else "", mimetype="text/html")
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response
