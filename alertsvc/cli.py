"""The ``alertsvc`` command: Flask's CLI over the app factory, plus our commands.

Like ``flask``, it reads a ``.env`` file in the checkout (``make run`` writes one choosing
development), never overriding what the environment already says.
"""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup, ScriptInfo

from alertsvc import create_app
from alertsvc.config import ConfigurationError


def _create_app() -> Flask:
    """Settings that cannot work are a clear message and exit 1, not a traceback."""
    try:
        return create_app()
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from error


class AlertsvcGroup(FlaskGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        """``alertsvc --help`` with unusable settings: the one-line reason, then the help.

        Flask prints the app factory's traceback here for anything but its own
        ``NoAppException``.
        """
        try:
            ctx.ensure_object(ScriptInfo).load_app()
        except click.ClickException as error:
            error.show()
            self._load_plugin_commands()
            return sorted(click.Group.list_commands(self, ctx))
        return super().list_commands(ctx)


def build_cli() -> FlaskGroup:
    return AlertsvcGroup(
        name="alertsvc",
        create_app=_create_app,
        help="alertsvc: email alert subscriptions. Settings come from ALERTSVC_* variables.",
    )


def main() -> None:
    build_cli().main(prog_name="alertsvc")
