from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from alertsvc.config import ConfigurationError
from alertsvc.database import schema_problem
from alertsvc.delivery.worker import Worker
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


COMMANDS = [worker_command]
