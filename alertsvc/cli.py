"""The ``alertsvc`` command: Flask's CLI over the app factory, plus our commands."""

from __future__ import annotations

from flask.cli import FlaskGroup

from alertsvc import create_app


def main() -> None:
    cli = FlaskGroup(
        name="alertsvc",
        create_app=lambda: create_app(),
        help="alertsvc: email alert subscriptions. Settings come from ALERTSVC_* variables.",
    )
    cli.main(prog_name="alertsvc")
