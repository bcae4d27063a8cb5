"""Subscribers: find by address, one subscriber's page, their next digest, export, erase."""

from __future__ import annotations

import json

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from alertsvc.admin.blueprint import bp
from alertsvc.admin.forms import ConfirmForm
from alertsvc.audit import record_audit
from alertsvc.database import transaction
from alertsvc.digests.preview import DigestPreview, preview_next_digest
from alertsvc.extensions import db
from alertsvc.models import Frequency, Subscriber
from alertsvc.subscriptions import services

SEARCH_LIMIT = 50
EMAILS_SHOWN = 50
QUERY_MAX = 320
PREVIEW_FREQUENCIES = (Frequency.DAILY.value, Frequency.WEEKLY.value)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# The preview's HTML is an email, shown in a sandboxed frame of our own page: its inline
# styles and remote images allowed, nothing else (no script, no form, no plugin).
PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox"
)


def _get_subscriber(subscriber_id: int) -> Subscriber:
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None:
        abort(404)
    return subscriber


@bp.get("/subscribers", endpoint="subscribers")
def subscribers_index() -> ResponseReturnValue:
    query = (request.args.get("q") or "").strip()
    problem = None
    results: list[Subscriber] | None = None
    if "q" in request.args:
        if not query:
            problem = "Enter an email address, or the start of one"
        elif len(query) > QUERY_MAX:
            problem = f"Enter at most {QUERY_MAX} characters"
        else:
            results = services.search_subscribers(query, SEARCH_LIMIT + 1)
    more = results is not None and len(results) > SEARCH_LIMIT
    if results is not None:
        results = results[:SEARCH_LIMIT]
    return render_template(
        "web/admin/subscribers.html",
        query=query[:QUERY_MAX],
        problem=problem,
        results=results,
        more=more,
        status_of=services.subscriber_status,
    ), (400 if problem else 200)


@bp.get("/subscribers/<int:subscriber_id>")
def subscribers_show(subscriber_id: int) -> ResponseReturnValue:
    subscriber = _get_subscriber(subscriber_id)
    history = services.subscription_history(subscriber)
    live = {s.frequency for s in history if s.ended_at is None}
    return render_template(
        "web/admin/subscriber.html",
        subscriber=subscriber,
        status=services.subscriber_status(subscriber),
        history=history,
        signup_requests=services.signup_requests_of(subscriber),
        emails=services.subscriber_emails(subscriber, limit=EMAILS_SHOWN, newest_first=True),
        emails_shown=EMAILS_SHOWN,
        suppression=services.subscriber_suppression(subscriber),
        previews=[f for f in PREVIEW_FREQUENCIES if f in live],
        weekday=WEEKDAYS[subscriber.weekly_day],
        form=ConfirmForm(),
    )


def _preview(subscriber_id: int, frequency: str) -> DigestPreview:
    """Plan the preview in this request's transaction, then roll all of it back."""
    if frequency not in PREVIEW_FREQUENCIES:
        abort(404)
    subscriber = _get_subscriber(subscriber_id)
    try:
        return preview_next_digest(subscriber, frequency)
    finally:
        db.session.rollback()


@bp.get("/subscribers/<int:subscriber_id>/preview/<frequency>")
def subscribers_preview(subscriber_id: int, frequency: str) -> ResponseReturnValue:
    preview = _preview(subscriber_id, frequency)
    subscriber = _get_subscriber(subscriber_id)
    return render_template(
        "web/admin/subscriber_preview.html",
        subscriber=subscriber,
        preview=preview,
    )


@bp.get("/subscribers/<int:subscriber_id>/preview/<frequency>/email.html")
def subscribers_preview_html(subscriber_id: int, frequency: str) -> ResponseReturnValue:
    """The preview's HTML part alone, for the sandboxed frame on the preview page."""
    preview = _preview(subscriber_id, frequency)
    if preview.message is None:
        abort(404)
    response = Response(preview.html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.get("/subscribers/<int:subscriber_id>/export.json")
def subscribers_export(subscriber_id: int) -> ResponseReturnValue:
    """Everything stored about them, as a download. A GET, so viewers may too: it changes
    nothing, but it is personal data leaving the service, so it is audited."""
    with transaction():
        subscriber = _get_subscriber(subscriber_id)
        data = services.export_subscriber(subscriber)
        record_audit("subscriber.export", f"subscriber {subscriber.id}")
    response = Response(json.dumps(data, indent=2), mimetype="application/json")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="subscriber-{subscriber_id}.json"'
    )
    return response


@bp.get("/subscribers/<int:subscriber_id>/erase")
def subscribers_erase_confirm(subscriber_id: int) -> ResponseReturnValue:
    subscriber = _get_subscriber(subscriber_id)
    return render_template(
        "web/admin/subscriber_erase.html", subscriber=subscriber, form=ConfirmForm()
    )


@bp.post("/subscribers/<int:subscriber_id>/erase")
def subscribers_erase(subscriber_id: int) -> ResponseReturnValue:
    form = ConfirmForm()
    subscriber = _get_subscriber(subscriber_id)
    if not form.validate_on_submit():
        return render_template(
            "web/admin/subscriber_erase.html", subscriber=subscriber, form=form
        ), 400
    if subscriber.erased_at is not None:
        flash(f"Subscriber {subscriber.id} was already erased.")
        return redirect(url_for("admin.subscribers_show", subscriber_id=subscriber.id))
    with transaction():
        services.erase_subscriber(subscriber)
        # By id only: the audit log must not keep what the erasure removed.
        record_audit("subscriber.erase", f"subscriber {subscriber_id}")
    flash(f"Subscriber {subscriber_id} was erased.")
    return redirect(url_for("admin.subscribers_show", subscriber_id=subscriber_id))
