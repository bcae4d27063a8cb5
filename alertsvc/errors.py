"""Error pages: every failure a person can cause gets a clear page, never a stack trace."""

from __future__ import annotations

import contextlib
import logging

from flask import Flask, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException, InternalServerError

from alertsvc.database import database_unavailable
from alertsvc.extensions import db

log = logging.getLogger(__name__)

# Seconds a client is asked to wait before trying again while the database is unreachable:
# about as long as a restart or a failover takes.
RETRY_AFTER_SECONDS = 10
UNAVAILABLE = (
    "Sorry, the service is unavailable at the moment",
    "We could not reach our records just now. Nothing you entered has been saved. "
    "Wait a few seconds, then try again.",
)

MESSAGES = {
    400: ("Sorry, there is a problem with your request", "Go back and try again."),
    404: ("Page not found", "If you typed the web address, check it is correct."),
    405: ("Sorry, that did not work", "This page cannot be used that way."),
    413: (
        "Sorry, what you sent is too large",
        "Go back, shorten what you entered and try again.",
    ),
    429: (
        "Sorry, there have been too many attempts",
        "Wait a while before you try again.",
    ),
    500: (
        "Sorry, there is a problem with the service",
        "Try again later. Nothing you entered has been lost or half-saved.",
    ),
}


def _page(status: int, title: str, detail: str) -> ResponseReturnValue:
    return render_template("web/error.html", status=status, title=title, detail=detail), status


def register(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> ResponseReturnValue:
        return _page(
            400,
            "Sorry, this form has expired",
            "For your security, forms stop working after a while or when cookies are off. "
            "Go back, reload the page and try again.",
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> ResponseReturnValue:
        status = error.code or 500
        title, detail = MESSAGES.get(status, (error.name, error.description or ""))
        if request.path.startswith("/api/"):
            return {"error": error.name, "detail": error.description}, status
        return _page(status, title, detail)

    @app.errorhandler(DBAPIError)
    @app.errorhandler(PoolTimeoutError)
    def database_error(error: SQLAlchemyError) -> ResponseReturnValue:
        """A database that cannot be reached (restarting, failing over, out of connections)
        is the service being briefly unavailable, not a bug: 503 with ``Retry-After``, one
        log line and no traceback. The next request gets a fresh connection (the pool pings
        before handing one out). Any other database error is unexpected."""
        if not database_unavailable(error):
            return unexpected_error(error)
        with contextlib.suppress(SQLAlchemyError):
            db.session.rollback()
        log.warning(
            "database unavailable on %s %s: %s",
            request.method,
            request.path,
            (str(getattr(error, "orig", None) or error).strip().splitlines() or [""])[0],
        )
        title, detail = UNAVAILABLE
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        if request.path.startswith("/api/"):
            return {"error": "Service Unavailable", "detail": detail}, 503, headers
        page = render_template("web/unavailable.html", title=title, detail=detail)
        return page, 503, headers

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> ResponseReturnValue:
        db.session.rollback()
        log.exception("unhandled error on %s %s", request.method, request.path)
        if isinstance(error, HTTPException):
            return http_error(error)
        return http_error(InternalServerError())
