from __future__ import annotations

import logging

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from alertsvc.addresses import InvalidAddress, normalise_email
from alertsvc.audit import record_audit
from alertsvc.config import ConfigurationError
from alertsvc.database import schema_problem_once_reachable, transaction
from alertsvc.delivery import suppressions
from alertsvc.delivery.pauses import (
    SCOPE_WORDS,
    describe_pause,
    pause,
    pause_actor,
    pauses_in_force,
    resume,
)
from alertsvc.delivery.reputation import Verdict, measure_reputation
from alertsvc.delivery.status import outbox_summary
from alertsvc.delivery.worker import PAUSED_BY_SES, Worker
from alertsvc.ids import ROW_ID
from alertsvc.models import PauseScope, Suppression, SuppressionReason, utcnow
from alertsvc.text import OPERATOR_NOTE_MAX, one_line, plural

log = logging.getLogger(__name__)

MAX_CONCURRENCY = 256
# A reason is shown by every `sending status` and worker summary: a line, not a document.


@click.command("worker")
@click.option("--burst", is_flag=True, help="Send everything due, then exit.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, MAX_CONCURRENCY),
    help="Emails sent at once (threads). Default: ALERTSVC_WORKER_CONCURRENCY.",
)
@with_appcontext
def worker_command(burst: bool, concurrency: int | None) -> None:
    """Send queued email. Stops after the current batch on SIGTERM; at once on a second."""
    problem = schema_problem_once_reachable()
    if problem:
        raise click.ClickException(problem)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if concurrency is None:
        concurrency = app.config["WORKER_CONCURRENCY"]
        if not isinstance(concurrency, int) or not 1 <= concurrency <= MAX_CONCURRENCY:
            raise click.ClickException(
                f"ALERTSVC_WORKER_CONCURRENCY must be a whole number from 1 to "
                f"{MAX_CONCURRENCY}, not {concurrency!r}"
            )
    if app.config["MAIL_TRANSPORT"] == "ses" and not app.config["SNS_TOPIC_ARNS"]:
        log.warning(
            "sending through SES with ALERTSVC_SNS_TOPIC_ARNS empty: /ses/events refuses every "
            "bounce and complaint, so bounced and complaining addresses keep being mailed "
            "(README: Bounces and complaints)"
        )
    worker = Worker(app, burst=burst, concurrency=concurrency)
    worker.stop.install()
    try:
        totals = worker.run()
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from error
    held = f", {totals.held} put back by a pause" if totals.held else ""
    click.echo(
        f"Worker stopped: {totals.sent} sent, {totals.retried} to retry, "
        f"{totals.failed} failed, {totals.suppressed} suppressed{held}, "
        f"in {plural(totals.batches, 'batch', 'batches')}"
    )
    if totals.paused:
        with transaction():
            lines = [f"Paused: {describe_pause(paused)}" for paused in pauses_in_force()]
        for line in lines:
            click.echo(line)
        if PauseScope.ALL in totals.paused:
            click.echo("Nothing more is sent until `alertsvc sending resume`.")
        else:
            click.echo("Subscription emails wait for `alertsvc sending resume`.")


@click.group("sending", cls=AppGroup)
def sending_cli() -> None:
    """See, pause and resume sending (the reputation guard and SES pause it too)."""


@sending_cli.command("status")
def sending_status_command() -> None:
    """Pauses in force, the reputation guard's rates, and the outbox by status."""
    config = current_app.config
    now = utcnow()
    with transaction():
        lines = []
        for paused in pauses_in_force():
            lines.append(f"Sending: {describe_pause(paused)}")
            if paused.paused_by == PAUSED_BY_SES:
                lines.append(
                    "  SES has paused sending for this account: mail stays queued. Run "
                    "`alertsvc sending resume` once SES has re-enabled the account."
                )
        report = measure_reputation(config, now)
        outbox = outbox_summary(now)
    for line in lines or ["Sending: running"]:
        click.echo(line)
    if config["MAIL_TRANSPORT"] == "ses":
        from alertsvc.delivery.ses import SesTransport  # boto3 only where SES is in use

        ses = SesTransport.from_config(config, 1)
        click.echo(ses.describe_account())
        ses.close()
    window_days = config["REPUTATION_WINDOW_SECONDS"] / 86400
    click.echo(
        f"Reputation: {plural(report.sends, 'subscription email')} sent in the window "
        f"(the last {config['REPUTATION_WINDOW_SENDS']} within {window_days:g} days): "
        f"bounce rate {report.bounce_rate:.2%} ({report.bounces}; threshold "
        f"{report.bounce_threshold:.2%}), complaint rate {report.complaint_rate:.2%} "
        f"({report.complaints}; threshold {report.complaint_threshold:.2%})"
    )
    if report.verdict is Verdict.TOO_FEW_SENDS:
        click.echo(f"  no verdict: fewer than {report.min_sends} sends in the window")
    else:
        click.echo(f"  {report.verdict.value}")
    oldest = f" (oldest queued {outbox.oldest_queued_age})" if outbox.oldest_queued_age else ""
    click.echo(
        f"Outbox: {outbox.queued} queued{oldest}, {outbox.sending} sending, "
        f"{outbox.failed} failed, {outbox.suppressed} suppressed"
    )


@sending_cli.command("pause")
@click.option(
    "--all",
    "all_sending",
    is_flag=True,
    help="Pause every email, confirmations too (default: subscription emails only).",
)
@click.option("--reason", required=True, help="Why: shown by `sending status`.")
def sending_pause_command(all_sending: bool, reason: str) -> None:
    """Pause subscription emails (digests and alerts), or with --all every email."""
    reason = _operator_note(reason, "--reason")
    if not reason:
        raise click.BadParameter("give a reason", param_hint="--reason")
    scope = PauseScope.ALL if all_sending else PauseScope.SUBSCRIPTIONS
    with transaction():
        if pause(scope, reason, pause_actor(), utcnow()):
            line = f"Paused {SCOPE_WORDS[scope]}: {reason}"
            record_audit("sending.pause", f"sending: {scope.value}", {"reason": reason})
        else:
            [existing] = [p for p in pauses_in_force() if p.scope == scope.value]
            line = f"Already paused, nothing changed: {describe_pause(existing)}"
    click.echo(line)


@sending_cli.command("resume")
@click.option(
    "--all",
    "scope",
    flag_value=PauseScope.ALL.value,
    help="Resume only the pause of all sending.",
)
@click.option(
    "--subscriptions",
    "scope",
    flag_value=PauseScope.SUBSCRIPTIONS.value,
    help="Resume only the pause of subscription emails.",
)
def sending_resume_command(scope: str | None) -> None:
    """Resume sending: every pause in force, or the one named."""
    chosen = PauseScope(scope) if scope else None
    with transaction():
        lines = [
            f"Resumed {describe_pause(p)}"
            for p in pauses_in_force()
            if chosen is None or p.scope == chosen.value
        ]
        if resume(chosen, pause_actor(), utcnow()):
            record_audit("sending.resume", f"sending: {chosen.value if chosen else 'every pause'}")
        lines += [f"Still paused: {describe_pause(p)}" for p in pauses_in_force()]
    if not any(line.startswith("Resumed") for line in lines):
        what = f"no pause of {SCOPE_WORDS[chosen]}" if chosen else "no pause"
        lines.insert(0, f"Nothing to resume: {what} is in force.")
    for line in lines:
        click.echo(line)


@click.group("suppressions")
def suppressions_cli() -> None:
    """The addresses never sent to: list them and why, add or remove one."""


def _address(raw: str) -> str:
    """The address as stored, or one line and exit 1 for something that is not one."""
    try:
        return normalise_email(raw)
    except InvalidAddress as error:
        raise click.ClickException(f"{raw!r} is not an email address: {error}") from error


def _operator_note(text: str | None, option: str) -> str:
    """An operator's note given on the command line, on one line and at most as long as
    the admin forms take."""
    note = one_line(text)
    if len(note) > OPERATOR_NOTE_MAX:
        raise click.BadParameter(
            f"at most {OPERATOR_NOTE_MAX} characters (this one has {len(note)})",
            param_hint=option,
        )
    return note


def _suppression_lines(rows: list[Suppression]) -> list[str]:
    """Address, reason, source, when, detail: one aligned line each."""
    cells = [
        (
            row.email,
            row.reason,
            row.source,
            f"{row.created_at:%Y-%m-%d %H:%M} UTC",
            one_line(row.detail),
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
    type=ROW_ID,  # a count of rows: at most as many as there can be
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
            _operator_note(detail, "--detail") or None,
            utcnow(),
        )
        existing = suppressions.suppression_of(address)
        if added and existing is not None:
            # The row's id, never the address: the audit log outlives an erasure.
            record_audit("suppression.add", f"suppression {existing.id}", {"reason": reason})
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
        existing = suppressions.suppression_of(address)
        removed = suppressions.unsuppress(address)
        if removed and existing is not None:
            record_audit(
                "suppression.remove", f"suppression {existing.id}", {"reason": existing.reason}
            )
    if not removed:
        raise click.ClickException(f"{address} is not suppressed")
    click.echo(f"Removed {address} from the suppression list")


COMMANDS = [worker_command, sending_cli, suppressions_cli]
