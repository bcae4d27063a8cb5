"""Operator pages under ``/admin``: sign-in, topics, feeds, articles, runs, subscribers,
delivery and the audit log. Server-rendered, no script needed.

Each page module adds its routes to the one blueprint (``admin.blueprint.bp``), whose
``before_request`` holds the access rule for all of them.
"""

from __future__ import annotations

from flask import Flask

from alertsvc.extensions import login_manager


def init_admin(app: Flask) -> None:
    from alertsvc.admin import (  # noqa: F401  (routes register on import)
        articles,
        audit_log,
        auth,
        dashboard,
        delivery,
        feeds,
        runs,
        subscribers,
        topics,
    )
    from alertsvc.admin.blueprint import bp
    from alertsvc.admin.operators import load_operator

    login_manager.init_app(app)
    login_manager.user_loader(load_operator)
    # The blueprint's own rule redirects; Flask-Login's view is for @login_required users.
    login_manager.login_view = "admin.sign_in"
    login_manager.session_protection = "basic"
    app.register_blueprint(bp)
