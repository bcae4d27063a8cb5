"""Characters no web page accepts in what it is sent (the API answers for itself under /api).

A NUL in a form field or a query reached the database: PostgreSQL refused it (500) and
SQLite stored it, to be shown back on a public page. Control characters are no text
anyone types, and Unicode's bidirectional overrides make an admin page show text in an
order other than the one stored. One rule, before any view runs, for every value of every
key: a query value or a path segment (``/topics/<slug>``) may hold no control character at
all, a form value may hold tab, CR and LF (a textarea's lines) and no other; under /admin
none may hold a bidirectional override or isolate.
"""

from __future__ import annotations

import re

from flask import Flask, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

API_PREFIX = "/api/"
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
_IN_QUERY = re.compile(r"[\x00-\x1f\x7f]")
_IN_FORM = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069]")


def _unusable(values: MultiDict[str, str], pattern: re.Pattern[str], admin: bool) -> bool:
    for key, value in values.items(multi=True):
        for text in (key, value):
            if pattern.search(text) or (admin and _BIDI.search(text)):
                return True
    return False


def refuse_unusable_characters() -> ResponseReturnValue | None:
    if request.path.startswith(API_PREFIX):
        return None
    admin = request.path == "/admin" or request.path.startswith("/admin/")
    path_values = MultiDict(
        [(key, value) for key, value in (request.view_args or {}).items() if isinstance(value, str)]
    )
    refused = (
        _unusable(request.args, _IN_QUERY, admin)
        or _unusable(path_values, _IN_QUERY, admin)
        or (request.mimetype in FORM_TYPES and _unusable(request.form, _IN_FORM, admin))
    )
    if not refused:
        return None
    return render_template(
        "web/error.html",
        status=400,
        title="Sorry, what you sent contains a character that cannot be used",
        detail="Go back, remove the character (it may be invisible, pasted with the text) "
        "and try again.",
    ), 400


def register(app: Flask) -> None:
    app.before_request(refuse_unusable_characters)
