"""Commands for the JSON API: ``api-tokens create|revoke``."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from alertsvc.api import tokens
from alertsvc.audit import record_audit
from alertsvc.database import transaction


@click.group("api-tokens")
def api_tokens_cli() -> None:
    """Create and revoke tokens for the JSON API."""


@api_tokens_cli.command("create")
@click.argument("name")
@with_appcontext
def api_tokens_create_command(name: str) -> None:
    """Create a token named NAME and print it. It is shown once: only its hash is stored."""
    try:
        with transaction():
            row, token = tokens.create_api_token(name)
            record_audit("token.create", f"token {row.name}", {"scopes": row.scopes.split()})
    except tokens.TokenError as error:
        raise click.ClickException(str(error)) from error
    click.echo(token)


@api_tokens_cli.command("revoke")
@click.argument("name")
@with_appcontext
def api_tokens_revoke_command(name: str) -> None:
    """Revoke the token named NAME: it stops working at once."""
    try:
        with transaction():
            tokens.revoke_api_token(name)
            record_audit("token.revoke", f"token {name}")
    except tokens.TokenError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Revoked token {name}")


COMMANDS = [api_tokens_cli]
