"""The ``/admin`` blueprint and the one rule every page under it obeys.

Every endpoint needs a signed-in, enabled operator, except signing in; every request that
could change something (any method but GET, HEAD, OPTIONS) needs an admin, except signing
out. The rule is here, before any view runs, so no page can forget it: a viewer's POST
never reaches a view. Sessions end after ``ADMIN_SESSION_IDLE_SECONDS`` without a request.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user, logout_user

from alertsvc.audit import Actor, set_actor
from alertsvc.ids import query_id
from alertsvc.models import utcnow

bp = Blueprint("admin", __name__, url_prefix="/admin")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Endpoints anyone may reach (to sign in), and changes a viewer may make (to sign out).
OPEN_ENDPOINTS = frozenset({"admin.sign_in"})
VIEWER_CHANGES = frozenset({"admin.sign_out"})
# Reads only admins may make: a subscriber's whole record leaving the service as a file (the
# API asks the subscribers:admin scope for the same).
ADMIN_READS = frozenset({"admin.subscribers_export"})
SEEN_KEY = "admin_seen"
# Query parameters that carry a row id on any admin page (the paging of long lists): checked
# here for every page, so none can pass a number past our id columns to the database.
ID_PARAMETERS = ("before",)

# The navigation, in order: (endpoint, label). An entry shows once its page exists.
NAVIGATION = [
    ("admin.dashboard", "Dashboard"),
    ("admin.topics", "Topics"),
    ("admin.feeds", "Feeds"),
    ("admin.articles", "Articles"),
    ("admin.runs", "Runs"),
    ("admin.subscribers", "Subscribers"),
    ("admin.delivery", "Delivery"),
    ("admin.audit", "Audit log"),
]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Characters a path or query keeps as they are when the address is written back out.
_PATH_SAFE = "/!$&'()*+,;=:@-._~"
_QUERY_SAFE = _PATH_SAFE + "?%"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path under /admin on this site, never elsewhere.

    Only a plain path: no scheme or host, no control character (a newline would end the
    ``Location`` header), no backslash, no empty, ``.`` or ``..`` segment, plain or
    percent-encoded (a browser resolves ``/admin/..//evil.example`` off this site). Anything
    else goes to the dashboard.
    """
    fallback = url_for("admin.dashboard")
    if not target or _CONTROL.search(target) or "\\" in target:
        return fallback
    parts = urlsplit(target)
    path = unquote(parts.path)
    if parts.scheme or parts.netloc or _CONTROL.search(path) or "\\" in path:
        return fallback
    segments = path.split("/")
    inner, last = segments[1:-1], segments[-1]
    if (
        segments[:2] != ["", "admin"]
        or any(segment in ("", ".", "..") for segment in inner)
        or last in (".", "..")
    ):
        return fallback
    query = f"?{quote(parts.query, safe=_QUERY_SAFE)}" if parts.query else ""
    return quote(path, safe=_PATH_SAFE) + query


def _refused(title: str, detail: str, link: tuple[str, str]) -> ResponseReturnValue:
    """A refused change: 403, and a page that says why in words (not "Forbidden")."""
    page = render_template("web/error.html", title=title, detail=detail, link=link)
    return page, 403


def _refuse_anonymous() -> ResponseReturnValue:
    """Pages send anyone not signed in to sign in. A change is refused outright: there is no
    page to come back to, and the form may have been left open past the idle time."""
    if request.method in SAFE_METHODS:
        return redirect(url_for("admin.sign_in", next=request.full_path.rstrip("?")))
    return _refused(
        "You are not signed in",
        "Nothing was changed. You may have been signed out after a while without using the "
        "admin pages. Sign in, then try again.",
        (url_for("admin.sign_in"), "Sign in"),
    )


@bp.before_request
def require_operator() -> ResponseReturnValue | None:
    for name in ID_PARAMETERS:
        query_id(name)
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    if not current_user.is_authenticated:
        return _refuse_anonymous()
    now = utcnow().timestamp()
    seen = session.get(SEEN_KEY)
    idle = float(current_app.config["ADMIN_SESSION_IDLE_SECONDS"])
    if not isinstance(seen, int | float) or now - seen > idle:
        logout_user()
        session.clear()
        flash("You were signed out because you had not used the admin pages for a while.")
        return _refuse_anonymous()
    session[SEEN_KEY] = now
    set_actor(Actor(f"operator:{current_user.email}", current_user.id))
    if not current_user.is_admin and (
        request.endpoint in ADMIN_READS
        or (request.method not in SAFE_METHODS and request.endpoint not in VIEWER_CHANGES)
    ):
        return _refused(
            "Your account can only view",
            "Nothing was changed. You are signed in as a viewer: you can see every admin "
            "page, but only an admin can change things or download a subscriber's data.",
            (url_for("admin.dashboard"), "Go to the dashboard"),
        )
    return None


@bp.app_context_processor
def navigation() -> dict[str, object]:
    """The admin pages' menu: only the pages that exist."""
    views = current_app.view_functions
    return {"admin_navigation": [(e, label) for e, label in NAVIGATION if e in views]}
