"""Scheduled digest and alert work fails small: one unit at a time, retried, then parked."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from alertsvc.digests import alerts as alerts_module
from alertsvc.digests import jobs, planning
from alertsvc.models import Article, AuditEntry, DigestRun, OutboxEmail, RunStatus
from tests.digests.helpers import RECIPIENT, alerts, at, start_subscriptions_at
from tests.factories import count, create_article, create_subscriber, rows, seed_topics


def break_alerts_for(monkeypatch, title: str) -> None:
    """The alert template fails for one article, as a bad template or bad data would."""
    real = alerts_module.render_alert

    def render(view, *args, **kwargs):
        if view.title == title:
            raise ValueError(f"template error in {title!r}")
        return real(view, *args, **kwargs)

    monkeypatch.setattr(alerts_module, "render_alert", render)


def article_state(app, article_id: int) -> tuple:
    [state] = rows(
        app,
        select(
            Article.alerts_processed_at.is_not(None),
            Article.alert_attempts,
            Article.alert_next_attempt_at,
            Article.alert_parked_at.is_not(None),
            Article.alert_last_error,
        ).where(Article.id == article_id),
    )
    return state


def test_a_failing_article_does_not_stop_the_others_and_is_parked_then_retried(
    app_with, monkeypatch
):
    app = app_with(JOB_MAX_ATTEMPTS=3, JOB_BACKOFF_BASE_SECONDS=60)
    topics = seed_topics(app)
    reader = create_subscriber(app, "reader@example.com", {topics["data"]: "immediately"})
    start_subscriptions_at(app, reader, at("2026-11-25T07:00"))
    broken = create_article(app, "Broken", [topics["data"]], at("2026-11-25T09:00"), alerted=False)
    healthy = create_article(
        app, "Healthy", [topics["data"]], at("2026-11-25T09:00"), alerted=False
    )
    break_alerts_for(monkeypatch, "Broken")

    result = alerts(app, at("2026-11-25T09:01"))
    assert (result.articles, result.emails, result.failed) == (1, 1, 1)
    assert rows(app, select(RECIPIENT)) == ["reader@example.com"], "the later article went"
    assert article_state(app, healthy)[0] is True
    done, attempts, next_at, parked, error = article_state(app, broken)
    assert (done, attempts, next_at, parked) == (False, 1, at("2026-11-25T09:02"), False)
    assert error == "ValueError: template error in 'Broken'"

    assert alerts(app, at("2026-11-25T09:01:30")).failed == 0, "not before its next attempt"
    assert alerts(app, at("2026-11-25T09:02")).failed == 1
    assert article_state(app, broken)[1:3] == (2, at("2026-11-25T09:04")), "the wait doubles"
    assert alerts(app, at("2026-11-25T09:04")).failed == 1
    done, attempts, next_at, parked, error = article_state(app, broken)
    assert (done, attempts, next_at, parked) == (False, 3, None, True)
    assert alerts(app, at("2026-11-26T09:00")).failed == 0, "parked: left for an operator"

    runner = app.test_cli_runner()
    status = runner.invoke(args=["alerts", "status"])
    assert status.exit_code == 0, status.output
    assert f"{broken:>6}  Broken" in status.output
    assert "PARKED" in status.output and "after 3 failed attempts" in status.output
    assert "ValueError: template error in 'Broken'" in status.output

    still_broken = runner.invoke(args=["alerts", "retry", str(broken)])
    assert still_broken.exit_code == 1
    assert f"Article {broken} failed again: ValueError" in still_broken.output
    assert "Traceback" not in still_broken.output
    assert article_state(app, broken)[1:4] == (1, article_state(app, broken)[2], False)

    monkeypatch.undo()
    retried = runner.invoke(args=["alerts", "retry", str(broken)])
    assert retried.exit_code == 0, retried.output
    assert f"Article {broken}: 1 email queued" in retried.output
    assert count(app, OutboxEmail) == 2
    assert article_state(app, broken) == (True, 0, None, False, None)

    missing = runner.invoke(args=["alerts", "retry", "999999"])
    assert missing.exit_code == 1
    assert missing.output.strip() == "Error: No article 999999."
    again = runner.invoke(args=["alerts", "retry", str(healthy)])
    assert again.exit_code == 1 and "nothing to retry" in again.output


def break_runs(monkeypatch, frequency: str, window_end=None) -> None:
    """Planning fails for runs of ``frequency`` (ending at ``window_end``, if given)."""
    real = planning._Planner.build_audience

    def build_audience(self):
        if self.run.frequency == frequency and window_end in (None, self.run.window_end):
            raise RuntimeError(f"cannot plan the {frequency} run")
        return real(self)

    monkeypatch.setattr(planning._Planner, "build_audience", build_audience)


def run_state(app, frequency: str, window_end) -> tuple:
    [state] = rows(
        app,
        select(
            DigestRun.id,
            DigestRun.status,
            DigestRun.attempts,
            DigestRun.next_attempt_at,
            DigestRun.parked_at.is_not(None),
            DigestRun.last_error,
        ).where(DigestRun.frequency == frequency, DigestRun.window_end == window_end),
    )
    return state


def test_a_failing_daily_run_does_not_skip_the_weekly_run_and_is_parked_then_retried(
    app_with, monkeypatch
):
    app = app_with(JOB_MAX_ATTEMPTS=2, JOB_BACKOFF_BASE_SECONDS=600)
    topics = seed_topics(app)
    hour = at("2026-11-25T07:00")  # a Wednesday; London is on UTC
    daily = create_subscriber(
        app, "daily@example.com", {topics["data"]: "daily"}, timezone="Europe/London", daily_hour=7
    )
    weekly = create_subscriber(
        app,
        "weekly@example.com",
        {topics["cyber-security"]: "weekly"},
        timezone="Europe/London",
        weekly_day=hour.weekday(),
        weekly_hour=7,
    )
    for subscriber in (daily, weekly):
        start_subscriptions_at(app, subscriber, at("2026-11-18T07:00"))
    create_article(app, "Data news", [topics["data"]], at("2026-11-24T12:00"))
    create_article(app, "Cyber news", [topics["cyber-security"]], at("2026-11-24T12:00"))
    break_runs(monkeypatch, "daily", hour)

    with app.app_context():
        planned = jobs.plan_due_digests(at("2026-11-25T07:02"))
    assert [(r.frequency, r.emails) for r in planned] == [("weekly", 1)]
    assert rows(app, select(RECIPIENT)) == ["weekly@example.com"]
    run_id, status, attempts, next_at, parked, error = run_state(app, "daily", hour)
    assert (status, attempts, next_at, parked) == (
        RunStatus.PLANNING,
        1,
        at("2026-11-25T07:12"),
        False,
    )
    assert error == "RuntimeError: cannot plan the daily run"

    with app.app_context():
        jobs.sweep_digest_runs(at("2026-11-25T07:10"))
    assert run_state(app, "daily", hour)[2] == 1, "not tried before its next attempt"
    with app.app_context():
        jobs.sweep_digest_runs(at("2026-11-25T07:12"))
    assert run_state(app, "daily", hour)[2:5] == (2, None, True), "parked after 2 attempts"
    with app.app_context():
        jobs.sweep_digest_runs(at("2026-11-25T09:00"))
    assert run_state(app, "daily", hour)[2] == 2, "the sweeper leaves a parked run alone"

    runner = app.test_cli_runner()
    listing = runner.invoke(args=["digest", "runs"])
    assert listing.exit_code == 0, listing.output
    assert f"{run_id:>6}  daily  2026-11-25 07:00 UTC  planning" in listing.output
    assert "PARKED" in listing.output and "after 2 failed attempts" in listing.output
    assert "RuntimeError: cannot plan the daily run" in listing.output

    monkeypatch.undo()
    retried = runner.invoke(args=["digest", "retry", str(run_id)])
    assert retried.exit_code == 0, retried.output
    assert f"Digest run {run_id} (daily ending 2026-11-25 07:00 UTC): 1 subscriber," in (
        retried.output
    )
    assert sorted(rows(app, select(RECIPIENT))) == ["daily@example.com", "weekly@example.com"]
    assert run_state(app, "daily", hour)[1:5] == (RunStatus.PLANNED, 0, None, False)
    # The same entry as the run's page writes (digests.runs.record_run_retry).
    assert rows(app, select(AuditEntry.target, AuditEntry.details)) == [
        (f"run {run_id}", {"subscribers": 1, "emails": 1})
    ]

    missing = runner.invoke(args=["digest", "retry", "999999"])
    assert missing.exit_code == 1
    assert missing.output.strip() == "Error: No digest run 999999."
    done = runner.invoke(args=["digest", "retry", str(run_id)])
    assert done.exit_code == 1 and "already planned" in done.output


def test_one_failing_run_does_not_stop_the_sweeper_creating_the_missed_ones(app, monkeypatch):
    topics = seed_topics(app)
    early = create_subscriber(app, "early@example.com", {topics["data"]: "daily"}, daily_hour=7)
    later = create_subscriber(app, "later@example.com", {topics["data"]: "daily"}, daily_hour=9)
    for subscriber in (early, later):
        start_subscriptions_at(app, subscriber, at("2026-11-24T10:00"))
    create_article(app, "News", [topics["data"]], at("2026-11-24T12:00"))
    break_runs(monkeypatch, "daily", at("2026-11-25T07:00"))

    with app.app_context():
        results = jobs.sweep_digest_runs(at("2026-11-25T10:00"))
    assert sum(r.emails for r in results) == 1
    assert rows(app, select(RECIPIENT)) == ["later@example.com"]
    assert count(app, DigestRun) == 2 * 48, "every missed run was created"
    assert run_state(app, "daily", at("2026-11-25T07:00"))[1:3] == (RunStatus.PLANNING, 1)
    now = at("2026-11-25T10:00")
    with app.app_context():
        waiting = [r.window_end for r in jobs.sweep_digest_runs(now + timedelta(minutes=1))]
    assert waiting == [], "the failed run waits for its next attempt"
