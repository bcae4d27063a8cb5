"""The ``alertsvc`` command: Flask's CLI over the app factory, plus our commands."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup

from alertsvc import create_app
from alertsvc.config import ConfigurationError


def _create_app() -> Flask:
    """Settings that cannot work are a clear message and exit 1, not a traceback."""
    try:
        return create_app()
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from error


def build_cli() -> FlaskGroup:
    return FlaskGroup(
        name="alertsvc",
        create_app=_create_app,
        help="alertsvc: email alert subscriptions. Settings come from ALERTSVC_* variables.",
    )


def main() -> None:
    build_cli().main(prog_name="alertsvc")
