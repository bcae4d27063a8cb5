"""``alertsvc operators …``: the accounts that sign in at /admin."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from alertsvc.admin import operators
from alertsvc.audit import record_audit
from alertsvc.database import transaction
from alertsvc.models import OperatorRole

ROLES = click.Choice([role.value for role in OperatorRole])


NO_TERMINAL = "no terminal to ask for the password: pipe it with --password-stdin"


def _read_password(from_stdin: bool) -> str:
    """From standard input (one line, for scripts) or a hidden prompt asked twice.

    Without a terminal to prompt on (cron, a pipe, ``</dev/null``) and no
    ``--password-stdin``, one line says so instead of a GetPassWarning and "Aborted!". An
    empty line is a password like any other, refused by the length rule.
    """
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise click.ClickException(NO_TERMINAL)
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _check(question, *args: object) -> None:  # type: ignore[no-untyped-def]
    """Ask before prompting for a password whether the command can succeed at all."""
    try:
        question(*args)
    except operators.OperatorError as error:
        raise click.ClickException(str(error)) from error


def _new_address(email: str) -> None:
    if operators.find_operator(email) is not None:
        raise operators.OperatorError(
            f"an operator {operators.operator_email(email)} already exists"
        )


def _run(change, *args: object) -> None:  # type: ignore[no-untyped-def]
    try:
        with transaction():
            change(*args)
    except operators.OperatorError as error:
        raise click.ClickException(str(error)) from error


@click.group("operators")
def operators_cli() -> None:
    """Accounts that sign in to the admin pages at /admin."""


@operators_cli.command("create")
@click.argument("email")
@click.option("--role", type=ROLES, default=OperatorRole.VIEWER.value, show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def create_command(email: str, role: str, password_stdin: bool) -> None:
    """Create an operator who signs in as EMAIL."""
    _check(_new_address, email)
    password = _read_password(password_stdin)

    def create() -> None:
        operator = operators.create_operator(email, password, role)
        record_audit("operator.create", f"operator {operator.email}", {"role": role})

    _run(create)
    click.echo(f"Created {operators.operator_email(email)} ({role})")


@operators_cli.command("list")
@with_appcontext
def list_command() -> None:
    """Every operator: address, role, state, last sign-in."""
    rows = operators.list_operators()
    if not rows:
        click.echo("No operators yet: alertsvc operators create EMAIL --role admin")
        return
    for operator in rows:
        state = "disabled" if operator.disabled_at else "active"
        last = (
            operator.last_signed_in_at.strftime("%Y-%m-%d %H:%M UTC")
            if operator.last_signed_in_at
            else "never signed in"
        )
        click.echo(f"{operator.email}\t{operator.role}\t{state}\t{last}")


@operators_cli.command("disable")
@click.argument("email")
@with_appcontext
def disable_command(email: str) -> None:
    """Stop EMAIL signing in, and sign them out everywhere at once."""

    def disable() -> None:
        operator = operators.disable_operator(email)
        record_audit("operator.disable", f"operator {operator.email}")

    _run(disable)
    click.echo(f"Disabled {operators.operator_email(email)}")


@operators_cli.command("enable")
@click.argument("email")
@with_appcontext
def enable_command(email: str) -> None:
    """Let a disabled operator sign in again."""

    def enable() -> None:
        operator = operators.enable_operator(email)
        record_audit("operator.enable", f"operator {operator.email}")

    _run(enable)
    click.echo(f"Enabled {operators.operator_email(email)}")


@operators_cli.command("set-role")
@click.argument("email")
@click.argument("role", type=ROLES)
@with_appcontext
def set_role_command(email: str, role: str) -> None:
    """Make EMAIL an admin or a viewer (their sessions end: they sign in again)."""

    def set_role() -> None:
        operator = operators.set_operator_role(email, role)
        record_audit("operator.set_role", f"operator {operator.email}", {"role": role})

    _run(set_role)
    click.echo(f"{operators.operator_email(email)} is now {role}")


@operators_cli.command("reset-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def reset_password_command(email: str, password_stdin: bool) -> None:
    """Set a new password for EMAIL (their sessions end)."""
    _check(operators.get_operator, email)
    password = _read_password(password_stdin)

    def reset() -> None:
        operator = operators.reset_operator_password(email, password)
        record_audit("operator.reset_password", f"operator {operator.email}")

    _run(reset)
    click.echo(f"New password set for {operators.operator_email(email)}")


DEV_ADMIN_EMAIL = "admin@example.org"
DEV_PASSWORD_FILE = "dev-admin-password"  # noqa: S105 (a file name)


@operators_cli.command("dev-admin")
@with_appcontext
def dev_admin_command() -> None:
    """Development only: make sure an admin exists to click through /admin with.

    Creates admin@example.org with a random password kept in instance/dev-admin-password
    (``make run`` calls this and prints how to sign in). Refused outside development.
    """
    if current_app.config["ENV"] != "development":
        raise click.ClickException("operators dev-admin is for development only")
    password_file = Path(current_app.instance_path) / DEV_PASSWORD_FILE
    operator = operators.find_operator(DEV_ADMIN_EMAIL)
    if operator is None or not password_file.exists():
        password = secrets.token_urlsafe(12)

        def make_admin() -> None:
            if operator is None:
                operators.create_operator(DEV_ADMIN_EMAIL, password, OperatorRole.ADMIN)
                record_audit("operator.create", f"operator {DEV_ADMIN_EMAIL}", {"role": "admin"})
            else:
                operators.reset_operator_password(DEV_ADMIN_EMAIL, password)

        _run(make_admin)
        password_file.write_text(password + "\n", encoding="utf-8")
        password_file.chmod(0o600)
    password = password_file.read_text(encoding="utf-8").strip()
    base = current_app.config["BASE_URL"]
    click.echo(f"Admin pages: {base}/admin/login as {DEV_ADMIN_EMAIL}, password {password}")


COMMANDS = [operators_cli]
