from __future__ import annotations

from datetime import UTC, datetime

import click
from flask.cli import with_appcontext

from alertsvc.cli import plural
from alertsvc.database import transaction
from alertsvc.digests.alerts import run_immediate_alerts
from alertsvc.digests.planning import (
    DIGEST_FREQUENCIES,
    RunRefused,
    check_window_end,
    plan_digest_run,
    run_digest,
    start_digest_run,
)
from alertsvc.digests.schedule import floor_hour
from alertsvc.models import utcnow


def _parse_at(value: str | None) -> datetime:
    if value is None:
        return floor_hour(utcnow())
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return check_window_end(moment)
    except RunRefused as error:
        raise click.BadParameter(str(error), param_hint="--at") from error
    except (ValueError, OverflowError) as error:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time, like 2026-11-25T07:00Z", param_hint="--at"
        ) from error


@click.group("digest")
def digest_cli() -> None:
    """Plan digest runs."""


@digest_cli.command("run")
@click.argument("frequency", type=click.Choice(DIGEST_FREQUENCIES))
@click.option(
    "--at",
    "at",
    metavar="ISO-TIME",
    help="The run's window end (rounded down to the hour; UTC unless an offset is given), "
    "not later than this hour, which is the default.",
)
@click.option("--dry-run", is_flag=True, help="Print what would be queued and write nothing.")
@with_appcontext
def run_command(frequency: str, at: str | None, dry_run: bool) -> None:
    """Queue the FREQUENCY digests of the subscribers whose hour it is."""
    window_end = _parse_at(at)
    if dry_run:
        result = run_digest(frequency, window_end, trigger="cli", dry_run=True)
        click.echo(
            f"Dry run of the {frequency} run ending {window_end:%Y-%m-%d %H:%M} UTC: "
            f"{plural(result.subscribers, 'subscriber')}, {plural(result.emails, 'email')} "
            f"would be queued, {plural(result.bodies, 'distinct body', 'distinct bodies')}. "
            "Nothing was written."
        )
        for email, topics, count in result.preview:
            click.echo(f"  {email}: {plural(count, 'article')} ({topics})")
        return
    with transaction():
        run = start_digest_run(frequency, window_end, trigger="cli")
    with click.progressbar(length=1, label=f"Planning {frequency} run") as bar:

        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done)

        result = plan_digest_run(run, progress=progress)
    if result.already_planned:
        click.echo(
            f"The {frequency} run ending {window_end:%Y-%m-%d %H:%M} UTC was already planned: "
            "nothing more to queue."
        )
        return
    click.echo(
        f"{frequency.capitalize()} run ending {window_end:%Y-%m-%d %H:%M} UTC: "
        f"{plural(result.subscribers, 'subscriber')}, {plural(result.emails, 'email')} queued, "
        f"{plural(result.bodies, 'distinct body', 'distinct bodies')}, {result.seconds:.2f} s"
    )


@click.group("alerts")
def alerts_cli() -> None:
    """Immediate alerts."""


@alerts_cli.command("run")
@with_appcontext
def alerts_run_command() -> None:
    """Queue immediate alerts for every new article (or major update) not yet alerted."""
    result = run_immediate_alerts()
    click.echo(
        f"Immediate alerts: {plural(result.articles, 'article')}, "
        f"{plural(result.emails, 'email')} queued, "
        f"{result.carried_over} held for the daily digest (cap reached), {result.seconds:.2f} s"
    )
