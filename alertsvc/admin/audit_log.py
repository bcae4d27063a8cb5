"""The audit log at ``/admin/audit``: read-only, newest first. No route here changes it."""

from __future__ import annotations

from flask import render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from alertsvc.admin.blueprint import bp
from alertsvc.audit import audit_entries
from alertsvc.extensions import db
from alertsvc.ids import query_id
from alertsvc.models import AuditEntry

PAGE_SIZE = 50


@bp.get("/audit", endpoint="audit")
def audit_index() -> ResponseReturnValue:
    before = query_id("before")
    action = (request.args.get("action") or "").strip()[:64] or None
    entries = audit_entries(limit=PAGE_SIZE + 1, before_id=before, action=action)
    more = len(entries) > PAGE_SIZE
    entries = entries[:PAGE_SIZE]
    actions = list(db.session.scalars(select(AuditEntry.action).distinct().order_by("action")))
    return render_template(
        "web/admin/audit.html",
        entries=entries,
        actions=actions,
        action=action,
        next_before=entries[-1].id if more else None,
    )
