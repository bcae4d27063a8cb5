"""Digest runs: the list, one run's live progress, run now (dry run first), retries.

Planning runs in the request, as ``alertsvc digest run`` does in the shell: a run of a
few thousand subscribers takes well under a second, a very large one (a million) takes
minutes, longer than a proxy waits; see the README.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField, StringField
from wtforms.validators import InputRequired, Length, ValidationError

from alertsvc.admin.blueprint import bp
from alertsvc.admin.forms import ConfirmForm
from alertsvc.audit import record_audit
from alertsvc.database import transaction
from alertsvc.digests import jobs, runs
from alertsvc.digests.planning import DIGEST_FREQUENCIES, RunRefused, check_window_end
from alertsvc.digests.schedule import floor_hour
from alertsvc.extensions import db
from alertsvc.models import DigestRun, OutboxStatus, RunStatus, utcnow
from alertsvc.retries import describe_error
from alertsvc.text import plural, sentence

PAGE_SIZE = 50
# Seconds between reloads of a run's page, when the operator chose to watch its progress,
# while it is planning or its emails are queued.
REFRESH_SECONDS = 5
AT_FORMAT = "%Y-%m-%dT%H:%M"


class RunNowForm(FlaskForm):
    frequency = RadioField(
        "Which digest",
        choices=[(f, f.capitalize()) for f in DIGEST_FREQUENCIES],
        validators=[InputRequired("Choose daily or weekly")],
    )
    at = StringField("Window end (UTC, optional)", validators=[Length(max=40)])

    def validate_at(self, field: StringField) -> None:
        """Fill ``window_end``: the hour the run ends (the last whole hour by default)."""
        self.window_end = parse_window_end(field.data or "")


class StartRunForm(FlaskForm):
    """The confirmation after a dry run: the same run, for real."""

    frequency = HiddenField(validators=[InputRequired()])
    # Empty means the last whole hour, as on the run-now form.
    at = HiddenField(validators=[Length(max=40)])


def parse_window_end(value: str, now: datetime | None = None) -> datetime:
    """An operator's window end: ISO 8601, UTC unless an offset is given, rounded down to the
    hour, not in the future (``check_window_end``: the one rule). Raises ``ValueError``
    with the message for the form."""
    value = value.strip()
    if not value:
        return floor_hour(now or utcnow())
    try:
        moment = datetime.fromisoformat(value.replace(" ", "T"))
    except ValueError:
        raise ValidationError(
            "Enter the window end as a date and hour in UTC, like 2026-11-25T07:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return check_window_end(moment, now)
    except (RunRefused, OverflowError) as error:
        raise ValidationError(sentence(str(error))) from None


def _get_run(run_id: int) -> DigestRun:
    run = db.session.get(DigestRun, run_id)
    if run is None:
        abort(404)
    return run


def _status(run: DigestRun, emails: runs.RunEmails) -> tuple[str, str]:
    """The run's state in words, and its tag colour."""
    if run.parked_at is not None:
        return "parked", "red"
    if run.status == RunStatus.PLANNING:
        return ("failing" if run.attempts else "planning"), ("red" if run.attempts else "yellow")
    if emails.waiting:
        return "sending", "yellow"
    if emails.count(OutboxStatus.FAILED):
        return "sent, some failed", "red"
    return "done", "green"


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "-"
    seconds = max(0, int((end - start).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


@bp.app_template_filter("utc_minute")
def utc_filter(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "-"


@bp.get("/runs", endpoint="runs")
def runs_index() -> ResponseReturnValue:
    before = request.args.get("before", type=int)
    rows = runs.list_runs(PAGE_SIZE + 1, before)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    emails = runs.run_emails([run.id for run in rows])
    return render_template(
        "web/admin/runs.html",
        runs=[
            (
                run,
                emails[run.id],
                _status(run, emails[run.id]),
                _duration(run.created_at, run.planned_at),
                _duration(run.created_at, emails[run.id].last_sent_at),
            )
            for run in rows
        ],
        next_before=rows[-1].id if more else None,
    )


@bp.get("/runs/<int:run_id>")
def runs_show(run_id: int) -> ResponseReturnValue:
    run = _get_run(run_id)
    emails = runs.run_emails([run.id])[run.id]
    in_progress = (run.status == RunStatus.PLANNING and run.parked_at is None) or emails.waiting > 0
    # Reloading only when asked to (WCAG 2.2.1: a page must not refresh itself on a timer
    # the person did not choose; the reload also moves a screen reader back to the top).
    watching = in_progress and request.args.get("live") == "1"
    return render_template(
        "web/admin/run.html",
        run=run,
        emails=emails,
        status=_status(run, emails),
        planning_time=_duration(run.created_at, run.planned_at),
        sending_time=_duration(run.created_at, emails.last_sent_at),
        in_progress=in_progress,
        refresh=REFRESH_SECONDS if watching else None,
        form=ConfirmForm(),
    )


# The page that asks (runs_new) and the page that shows the dry run (runs_preview) share
# the endpoint prefix, so the menu highlights "Runs" on both.
@bp.get("/runs/new")
def runs_new() -> ResponseReturnValue:
    form = RunNowForm(formdata=None, frequency="daily")
    return render_template("web/admin/run_new.html", form=form, default_end=_default_end())


def _default_end() -> str:
    return f"{floor_hour(utcnow()):%Y-%m-%d %H:%M} UTC"


@bp.post("/runs/new")
def runs_preview() -> ResponseReturnValue:
    """The dry run: the counts the run would queue, and a button to queue them."""
    form = RunNowForm()
    if not form.validate_on_submit():
        return render_template("web/admin/run_new.html", form=form, default_end=_default_end()), 400
    frequency, window_end = form.frequency.data, form.window_end
    result = jobs.plan_run(frequency, window_end, trigger="operator", dry_run=True)
    start = StartRunForm(formdata=None, frequency=frequency, at=f"{window_end:{AT_FORMAT}}")
    return render_template(
        "web/admin/run_preview.html",
        result=result,
        frequency=frequency,
        window_end=window_end,
        form=start,
    )


@bp.post("/runs/start")
def runs_start() -> ResponseReturnValue:
    form = StartRunForm()
    if not form.validate_on_submit() or form.frequency.data not in DIGEST_FREQUENCIES:
        abort(400)
    try:
        window_end = parse_window_end(form.at.data or "")
    except ValueError as error:
        # The hidden value came from the dry run; a hand-made one may still be refused.
        retry = RunNowForm(formdata=None, frequency=form.frequency.data, at=form.at.data)
        retry.at.errors = [str(error)]
        return render_template(
            "web/admin/run_new.html", form=retry, default_end=_default_end()
        ), 400
    frequency = form.frequency.data
    try:
        result = jobs.plan_run(frequency, window_end, trigger="operator")
    except Exception as error:
        db.session.rollback()
        with transaction():
            run = db.session.scalar(
                db.select(DigestRun).where(
                    DigestRun.frequency == frequency, DigestRun.window_end == window_end
                )
            )
            runs.record_run_trigger(
                frequency, window_end, run.id if run else None, error=describe_error(error)
            )
        flash(f"The run failed: {describe_error(error)}")
        if run is None:
            return redirect(url_for("admin.runs"))
        return redirect(url_for("admin.runs_show", run_id=run.id))
    # Planning commits in steps of its own (the run row first, then chunks of
    # subscribers): the entry is written when it is done, with what it queued.
    with transaction():
        runs.record_run_trigger(frequency, window_end, result.run_id, result=result)
    if result.already_planned:
        flash(f"That {frequency} run was already planned: nothing more was queued.")
    else:
        flash(
            f"The {frequency} run ending {window_end:%Y-%m-%d %H:%M} UTC queued "
            f"{plural(result.emails, 'email')} for {plural(result.subscribers, 'subscriber')}."
        )
    return redirect(url_for("admin.runs_show", run_id=result.run_id))


@bp.post("/runs/<int:run_id>/retry-failed")
def runs_retry_failed(run_id: int) -> ResponseReturnValue:
    """Queue the run's failed emails again (not the suppressed ones)."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    with transaction():
        run = _get_run(run_id)
        requeued = runs.requeue_failed_emails(run.id, utcnow())
        if requeued:
            record_audit("run.retry_failed", f"run {run.id}", {"emails": requeued})
    if requeued:
        flash(f"{plural(requeued, 'failed email')} queued again.")
    else:
        flash("This run has no failed emails to send again.")
    return redirect(url_for("admin.runs_show", run_id=run_id))


@bp.post("/runs/<int:run_id>/retry")
def runs_retry(run_id: int) -> ResponseReturnValue:
    """Plan a parked (or failing) run again now: ``alertsvc digest retry``."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    _get_run(run_id)
    db.session.rollback()
    try:
        result = jobs.retry_run(run_id)
    except runs.RunError as error:
        flash(str(error))
        return redirect(url_for("admin.runs_show", run_id=run_id))
    except Exception as error:
        db.session.rollback()
        with transaction():
            runs.record_run_retry(run_id, error=describe_error(error))
        flash(f"The run failed again: {describe_error(error)}")
        return redirect(url_for("admin.runs_show", run_id=run_id))
    with transaction():
        runs.record_run_retry(run_id, result=result)
    flash(f"The run was planned: {plural(result.emails, 'email')} queued.")
    return redirect(url_for("admin.runs_show", run_id=run_id))
