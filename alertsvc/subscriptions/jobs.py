"""Scheduled jobs for subscriptions: entry points that own their transaction."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app

from alertsvc.database import transaction
from alertsvc.models import utcnow
from alertsvc.subscriptions.services import delete_unconfirmed_signup_requests


def purge_signup_requests() -> int:
    """Delete signup requests nobody confirmed within the retention period, in one
    transaction. Returns how many."""
    cutoff = utcnow() - timedelta(days=current_app.config["SIGNUP_REQUEST_RETENTION_DAYS"])
    with transaction():
        return delete_unconfirmed_signup_requests(cutoff)
