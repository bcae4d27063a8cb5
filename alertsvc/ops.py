"""Endpoints for whoever runs the service: health and metrics."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from alertsvc.api.tokens import bearer_token
from alertsvc.extensions import csrf, db, limiter
from alertsvc.metrics import scrape

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
@limiter.exempt
def healthz() -> ResponseReturnValue:
    """200 when the database answers; 503 otherwise (for load balancers and probes)."""
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        db.session.rollback()
        return jsonify(status="unavailable", database="unreachable"), 503
    finally:
        db.session.rollback()
    return jsonify(status="ok", database="ok")


@bp.get("/metrics")
@limiter.exempt
@csrf.exempt
def metrics() -> ResponseReturnValue:
    """Prometheus metrics, for a scraper bearing ``METRICS_TOKEN``.

    Without the setting the page does not exist (404): it fails closed rather than show
    the service's traffic to anyone. The token is compared in constant time.
    """
    expected = current_app.config["METRICS_TOKEN"]
    if not expected:
        abort(404)
    presented = bearer_token(request) or ""
    if not hmac.compare_digest(presented.encode(), str(expected).encode()):
        return Response(
            "A bearer token is needed.\n",
            401,
            {"WWW-Authenticate": 'Bearer realm="metrics"', "Content-Type": "text/plain"},
        )
    return Response(scrape(), 200, {"Content-Type": CONTENT_TYPE_LATEST})
