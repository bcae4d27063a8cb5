"""``alertsvc retention purge [--dry-run]``: the scheduled purge, run now."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from alertsvc.audit import record_audit
from alertsvc.database import transaction
from alertsvc.retention.jobs import purge_expired_data

# What each count is: (done, for a dry run).
LABELS = {
    "outbox_emails": ("outbox emails deleted", "outbox emails to delete"),
    "email_bodies": ("email bodies deleted", "email bodies to delete"),
    "digest_deliveries": ("digest ledger rows deleted", "digest ledger rows to delete"),
    "alert_deliveries": ("alert ledger rows deleted", "alert ledger rows to delete"),
    "digest_runs": ("digest runs deleted", "digest runs to delete"),
    "addresses_blanked": ("addresses blanked", "addresses to blank"),
}


@click.group("retention")
def retention_cli() -> None:
    """Delete what the ALERTSVC_RETENTION_* settings no longer keep."""


@retention_cli.command("purge")
@click.option("--dry-run", is_flag=True, help="Count what would go; change nothing.")
@with_appcontext
def purge_command(dry_run: bool) -> None:
    """Purge old outbox rows, bodies, ledgers and runs; blank the addresses of people who
    left. The scheduler runs this daily."""
    counts = purge_expired_data(dry_run=dry_run).as_dict()
    for name, count in counts.items():
        click.echo(f"{count:>10}  {LABELS[name][dry_run]}")
    if dry_run:
        click.echo("Dry run: nothing was changed.")
        return
    with transaction():
        record_audit("retention.purge", "retention", counts)


COMMANDS = [retention_cli]
