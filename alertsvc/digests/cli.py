from __future__ import annotations

from datetime import UTC, datetime

import click
from flask.cli import with_appcontext

from alertsvc.audit import record_audit
from alertsvc.database import schema_problem, transaction
from alertsvc.digests import alerts, jobs, runs
from alertsvc.digests.planning import DIGEST_FREQUENCIES, RunRefused, check_window_end
from alertsvc.digests.schedule import floor_hour
from alertsvc.ids import ROW_ID
from alertsvc.models import DigestRun, RunStatus, utcnow
from alertsvc.retries import describe_error
from alertsvc.text import plural


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
        result = jobs.plan_run(frequency, window_end, trigger="cli", dry_run=True)
        click.echo(
            f"Dry run of the {frequency} run ending {window_end:%Y-%m-%d %H:%M} UTC: "
            f"{plural(result.subscribers, 'subscriber')}, {plural(result.emails, 'email')} "
            f"would be queued, {plural(result.bodies, 'distinct body', 'distinct bodies')}. "
            "Nothing was written."
        )
        if result.already_planned:
            click.echo(
                f"That run was already planned (run {result.run_id}): running it again "
                "queues nothing more."
            )
        for email, topics, count in result.preview:
            click.echo(f"  {email}: {plural(count, 'article')} ({topics})")
        return
    with click.progressbar(length=1, label=f"Planning {frequency} run") as bar:

        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done)

        result = jobs.plan_run(frequency, window_end, trigger="cli", progress=progress)
    # Planning commits in chunks of its own; the entry follows the run it records.
    with transaction():
        runs.record_run_trigger(frequency, window_end, result.run_id, result=result)
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
    result = jobs.run_immediate_alerts()
    click.echo(f"Immediate alerts: {result}")
    if result.failed:
        click.echo("See alertsvc alerts status for what failed and why.")
        raise SystemExit(1)


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "-"


def _failure(attempts: int, parked_at: datetime | None, next_at: datetime | None) -> str:
    if parked_at:
        return f"PARKED {_when(parked_at)} after {attempts} failed attempts"
    return f"{attempts} failed attempts, next attempt {_when(next_at)}"


@alerts_cli.command("status")
@with_appcontext
def alerts_status_command() -> None:
    """How many articles wait for their alerts, and those whose alerts failed."""
    with transaction():
        status = alerts.alert_status(utcnow())
        failing = [
            (
                a.id,
                a.title,
                a.alert_attempts,
                a.alert_parked_at,
                a.alert_next_attempt_at,
                a.alert_last_error,
            )
            for a in status.failing
        ]
    click.echo(
        f"{plural(status.waiting, 'article')} waiting for their alerts, {len(failing)} failing."
    )
    for article_id, title, attempts, parked_at, next_at, error in failing:
        click.echo(f"{article_id:>6}  {title}")
        click.echo(f"        {_failure(attempts, parked_at, next_at)}: {error}")
    if any(parked_at for _, _, _, parked_at, _, _ in failing):
        click.echo("Retry a parked article once fixed: alertsvc alerts retry ARTICLE_ID")


def _schema_ready() -> None:
    """Stop with the one line saying to run ``db upgrade`` when the schema is missing or old."""
    problem = schema_problem()
    if problem:
        raise click.ClickException(problem)


@alerts_cli.command("retry")
@click.argument("article_id", type=ROW_ID)
@with_appcontext
def alerts_retry_command(article_id: int) -> None:
    """Un-park ARTICLE_ID's alerts and queue them now. Exits 1 if they fail again."""
    _schema_ready()  # else the failure below would read as the job failing again
    try:
        result = jobs.alert_one_article(article_id)
    except alerts.AlertError as error:
        raise click.ClickException(str(error)) from error
    except Exception as error:
        raise click.ClickException(
            f"Article {article_id} failed again: {describe_error(error)}"
        ) from error
    with transaction():
        record_audit("article.alerts_retry", f"article {article_id}", {"emails": result.emails})
    click.echo(
        f"Article {article_id}: {plural(result.emails, 'email')} queued, "
        f"{result.carried_over} held for the daily digest (cap reached)"
    )


@digest_cli.command("runs")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000))
@with_appcontext
def digest_runs_command(limit: int) -> None:
    """List the latest runs, and every older one that failed; parked runs say why."""
    with transaction():
        rows: list[DigestRun] = runs.recent_runs(limit)
        lines = []
        for run in rows:
            lines.append(
                f"{run.id:>6}  {run.frequency:<6} {_when(run.window_end)}  {run.status:<8}  "
                f"{plural(run.subscriber_count, 'subscriber')}, {plural(run.email_count, 'email')}"
            )
            if run.status == RunStatus.PLANNING and run.attempts:
                failure = _failure(run.attempts, run.parked_at, run.next_attempt_at)
                lines.append(f"        {failure}: {run.last_error}")
    if not lines:
        click.echo("No digest runs yet.")
    for line in lines:
        click.echo(line)


@digest_cli.command("retry")
@click.argument("run_id", type=ROW_ID)
@with_appcontext
def digest_retry_command(run_id: int) -> None:
    """Un-park digest run RUN_ID and plan it now. Exits 1 if it fails again."""
    _schema_ready()  # else the failure below would read as the job failing again
    try:
        result = jobs.retry_run(run_id)
    except runs.RunError as error:
        raise click.ClickException(str(error)) from error
    except Exception as error:
        raise click.ClickException(
            f"Digest run {run_id} failed again: {describe_error(error)}"
        ) from error
    with transaction():
        runs.record_run_retry(run_id, result=result)
    click.echo(
        f"Digest run {run_id} ({result.frequency} ending {_when(result.window_end)}): "
        f"{plural(result.subscribers, 'subscriber')}, {plural(result.emails, 'email')} queued"
    )


COMMANDS = [digest_cli, alerts_cli]
