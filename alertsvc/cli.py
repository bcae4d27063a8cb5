"""The ``alertsvc`` command: Flask's CLI over the app factory, plus our commands.

Like ``flask``, it reads a ``.env`` file in the checkout (``make run`` writes one choosing
development), never overriding what the environment already says.
"""

from __future__ import annotations

from typing import Any

import click
from flask import Flask
from flask.cli import FlaskGroup, ScriptInfo
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError

from alertsvc import create_app
from alertsvc.config import ConfigurationError
from alertsvc.database import NO_SCHEMA, OLD_SCHEMA

# SQLite's messages and PostgreSQL's SQLSTATE codes for a schema that is missing or behind.
_NO_TABLE = ("no such table", "42P01")
_NO_COLUMN = ("no such column", "42703")


def _create_app() -> Flask:
    """Settings that cannot work are a clear message and exit 1, not a traceback."""
    try:
        return create_app()
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from error


def _first_line(error: SQLAlchemyError) -> str:
    original = getattr(error, "orig", None) or error
    return (str(original).strip().splitlines() or [type(original).__name__])[0]


def _matches(error: SQLAlchemyError, signs: tuple[str, str]) -> bool:
    message, sqlstate = signs
    original = getattr(error, "orig", None)
    return getattr(original, "sqlstate", None) == sqlstate or message in str(original).lower()


def database_problem(error: SQLAlchemyError) -> click.ClickException:
    """One line an operator can act on, for a database error no command expected.

    The usual one is a database whose schema was never built (or is behind the code):
    every command would otherwise print a page of SQL.
    """
    if isinstance(error, OperationalError | ProgrammingError):
        if _matches(error, _NO_TABLE):
            return click.ClickException(NO_SCHEMA)
        if _matches(error, _NO_COLUMN):
            return click.ClickException(OLD_SCHEMA)
    if isinstance(error, IntegrityError):
        return click.ClickException(f"that conflicts with what is stored: {_first_line(error)}")
    return click.ClickException(f"the database could not be used: {_first_line(error)}")


class AlertsvcGroup(FlaskGroup):
    """Flask's group, turning the errors any command can meet into one line and exit 1.

    Commands still check their own input (a missing id, an unknown slug) and say so in
    their own words; this is the net under all of them.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SQLAlchemyError as error:
            raise database_problem(error) from error

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
