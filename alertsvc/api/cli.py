"""Commands for the JSON API: ``api-tokens create|list|revoke``."""

from __future__ import annotations

from datetime import datetime

import click
from flask.cli import with_appcontext

from alertsvc.api import tokens
from alertsvc.audit import record_audit
from alertsvc.database import transaction


@click.group("api-tokens")
def api_tokens_cli() -> None:
    """Create, list and revoke tokens for the JSON API."""


@api_tokens_cli.command("create")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(tokens.SCOPES),
    help="What the token may do; repeat for several. Default: articles:write.",
)
@with_appcontext
def api_tokens_create_command(name: str, scopes: tuple[str, ...]) -> None:
    """Create a token named NAME and print it. It is shown once: only its hash is stored.

    Scopes: articles:write (send articles), runs:write (trigger digest runs), read (topics,
    feeds, articles, runs, stats), subscribers:admin (export and erase subscribers).
    """
    try:
        with transaction():
            row, token = tokens.create_api_token(name, scopes or ("articles:write",))
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


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "never"


@api_tokens_cli.command("list")
@with_appcontext
def api_tokens_list_command() -> None:
    """List the tokens: name, scopes, created, last used, revoked (never the token)."""
    with transaction():
        lines = [
            f"{row.name}\t{row.scopes}\tcreated {_when(row.created_at)}\t"
            f"last used {_when(row.last_used_at)}"
            + (f"\tREVOKED {_when(row.revoked_at)}" if row.revoked_at else "")
            for row in tokens.list_api_tokens()
        ]
    if not lines:
        click.echo("No API tokens yet: alertsvc api-tokens create NAME --scope SCOPE")
    for line in lines:
        click.echo(line)


COMMANDS = [api_tokens_cli]
