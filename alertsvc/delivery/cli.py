from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from alertsvc.addresses import InvalidAddress, normalise_email
from alertsvc.config import ConfigurationError
from alertsvc.database import schema_problem, transaction
from alertsvc.delivery import suppressions
from alertsvc.delivery.worker import Worker
from alertsvc.models import Suppression, SuppressionReason, utcnow
from alertsvc.text import plural


@click.command("worker")
@click.option("--burst", is_flag=True, help="Send everything due, then exit.")
@with_appcontext
def worker_command(burst: bool) -> None:
    """Send queued email. Stops after the current batch on SIGTERM; at once on a second."""
    problem = schema_problem()
    if problem:
        raise click.ClickException(problem)
    worker = Worker(current_app._get_current_object(), burst=burst)  # type: ignore[attr-defined]
    worker.stop.install()
    try:
        totals = worker.run()
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"Worker stopped: {totals.sent} sent, {totals.retried} to retry, "
        f"{totals.failed} failed, in {plural(totals.batches, 'batch', 'batches')}"
    )


@click.group("suppressions")
def suppressions_cli() -> None:
    """The addresses never sent to: list them and why, add or remove one."""


def _address(raw: str) -> str:
    """The address as stored, or one line and exit 1 for something that is not one."""
    try:
        return normalise_email(raw)
    except InvalidAddress as error:
        raise click.ClickException(f"{raw!r} is not an email address: {error}") from error


def _one_line(text: str | None) -> str:
    """SES's words on one printable line: no newline or terminal escape gets through."""
    return " ".join("".join(c if c.isprintable() else " " for c in text or "").split())


def _suppression_lines(rows: list[Suppression]) -> list[str]:
    """Address, reason, source, when, detail: one aligned line each."""
    cells = [
        (
            row.email,
            row.reason,
            row.source,
            f"{row.created_at:%Y-%m-%d %H:%M} UTC",
            _one_line(row.detail),
        )
        for row in rows
    ]
    widths = [max(len(cell[column]) for cell in cells) for column in range(4)]
    return [
        "  ".join(f"{cell:<{width}}" for cell, width in zip(row[:4], widths, strict=True))
        + (f"  {row[4]}" if row[4] else "")
        for row in cells
    ]


@suppressions_cli.command("list")
@click.option(
    "--reason",
    type=click.Choice([reason.value for reason in SuppressionReason]),
    help="Only addresses suppressed for this reason.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=suppressions.DEFAULT_LIST_LIMIT,
    show_default=True,
    help="Show at most this many, the most recent first.",
)
@with_appcontext
def list_suppressions_command(reason: str | None, limit: int) -> None:
    """List suppressed addresses: reason, source, when, and SES's words (the detail)."""
    chosen = SuppressionReason(reason) if reason else None
    rows = suppressions.list_suppressions(chosen, limit)
    if not rows:
        click.echo("No addresses are suppressed" + (f" for {reason}." if reason else "."))
        return
    for line in _suppression_lines(rows):
        click.echo(line)
    total = suppressions.count_suppressions(chosen)
    if total > len(rows):
        click.echo(f"… and {total - len(rows)} more (use --limit to see them)")


@suppressions_cli.command("add")
@click.argument("email")
@click.option(
    "--reason",
    type=click.Choice([reason.value for reason in SuppressionReason]),
    default=SuppressionReason.OPERATOR.value,
    show_default=True,
    help="Why the address is never to be sent to.",
)
@click.option("--detail", default=None, help="A note for other operators (the why in words).")
@with_appcontext
def add_suppression_command(email: str, reason: str, detail: str | None) -> None:
    """Never send to EMAIL again (its subscriptions stay; mail to it ends as suppressed)."""
    address = _address(email)
    with transaction():
        added = suppressions.suppress(
            address,
            SuppressionReason(reason),
            suppressions.SuppressionSource.OPERATOR,
            _one_line(detail) or None,
            utcnow(),
        )
        existing = suppressions.suppression_of(address)
    if added or existing is None:
        click.echo(f"Suppressed {address}")
        return
    click.echo(
        f"{address} was already suppressed ({existing.reason}, by {existing.source}, "
        f"since {existing.created_at:%Y-%m-%d %H:%M} UTC); left as it was"
    )


@suppressions_cli.command("remove")
@click.argument("email")
@with_appcontext
def remove_suppression_command(email: str) -> None:
    """Allow mail to EMAIL again. Its ended subscriptions stay ended."""
    address = _address(email)
    with transaction():
        removed = suppressions.unsuppress(address)
    if not removed:
        raise click.ClickException(f"{address} is not suppressed")
    click.echo(f"Removed {address} from the suppression list")


COMMANDS = [worker_command, suppressions_cli]
