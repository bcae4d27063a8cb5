"""The dashboard: the state of the service at a glance."""

from __future__ import annotations

from flask import render_template
from flask.typing import ResponseReturnValue

from alertsvc.admin.blueprint import bp


@bp.get("/")
def dashboard() -> ResponseReturnValue:
    return render_template("web/admin/dashboard.html")
