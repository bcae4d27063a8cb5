"""/privacy, /accessibility and /contact: render the settings and the axe results."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from alertsvc.legal import services

bp = Blueprint("legal", __name__)


@bp.get("/privacy")
def privacy() -> str:
    return render_template(
        "web/legal/privacy.html", retention=services.retention(current_app.config)
    )


@bp.get("/accessibility")
def accessibility() -> str:
    return render_template("web/legal/accessibility.html", results=services.accessibility_results())


@bp.get("/contact")
def contact() -> str:
    return render_template("web/legal/contact.html")
