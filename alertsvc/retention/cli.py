"""``alertsvc retention purge [--dry-run]``: the scheduled purge, run now."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from alertsvc.audit import record_audit
from alertsvc.database import transaction
from alertsvc.retention.jobs import purge_expired_data

LABELS = {
    "outbox_emails": "outbox emails deleted",
    "email_bodies": "email bodies deleted",
    "digest_deliveries": "digest ledger rows deleted",
    "alert_deliveries": "alert ledger rows deleted",
    "digest_runs": "digest runs deleted",
    "addresses_blanked": "addresses blanked",
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
        label = LABELS[name]
        click.echo(f"{count:>10}  {label.replace('deleted', 'to delete') if dry_run else label}")
    if dry_run:
        click.echo("Dry run: nothing was changed.")
        return
    with transaction():
        record_audit("retention.purge", "retention", counts)


COMMANDS = [retention_cli]
