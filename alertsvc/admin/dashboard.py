"""The dashboard: the state of the service at a glance."""

from __future__ import annotations

from flask import current_app, render_template
from flask.typing import ResponseReturnValue

from alertsvc.admin import stats
from alertsvc.admin.blueprint import bp
from alertsvc.admin.charts import line_chart
from alertsvc.admin.delivery import reputation_context
from alertsvc.models import utcnow

SERIES = [
    ("Queued", "queued"),
    ("Sent", "sent"),
    ("Failed", "failed"),
    ("Suppressed", "suppressed"),
]


@bp.get("/")
def dashboard() -> ResponseReturnValue:
    reputation = reputation_context()
    figures = stats.dashboard(
        utcnow(), int(current_app.config["FEEDS_STALE_DAYS"]), reputation["pauses"]
    )
    chart = line_chart(
        [day.day for day in figures.days],
        [(name, key, [getattr(day, key) for day in figures.days]) for name, key in SERIES],
    )
    return render_template(
        "web/admin/dashboard.html",
        figures=figures,
        chart=chart,
        series=SERIES,
        frequencies=stats.FREQUENCIES,
        **reputation,
    )
