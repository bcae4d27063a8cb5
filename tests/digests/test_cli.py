from __future__ import annotations

import pytest
from sqlalchemy import select

from alertsvc.digests.planning import RunRefused, check_window_end
from alertsvc.models import DigestRun, OutboxEmail
from tests.digests.helpers import at, start_subscriptions_at
from tests.factories import (
    count,
    create_article,
    create_subscriber,
    rows,
    seed_topics,
    stored_state,
)


def test_digest_run_command_prints_a_summary(app):
    topics = seed_topics(app)
    reader = create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
    start_subscriptions_at(app, reader, at("2026-11-24T07:00"))
    create_article(app, "News", [topics["data"]], at("2026-11-24T12:00"))
    runner = app.test_cli_runner()

    dry = runner.invoke(args=["digest", "run", "daily", "--at", "2026-11-25T07:00Z", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert (
        "1 subscriber, 1 email would be queued, 1 distinct body." in dry.output
        and "Nothing was written" in dry.output
    )
    assert "reader@example.com: 1 article (Data)" in dry.output
    assert count(app, OutboxEmail) == 0 and count(app, DigestRun) == 0

    real = runner.invoke(args=["digest", "run", "daily", "--at", "2026-11-25T07:00Z"])
    assert real.exit_code == 0, real.output
    assert "1 subscriber, 1 email queued, 1 distinct body" in real.output
    assert count(app, OutboxEmail) == 1

    again = runner.invoke(args=["digest", "run", "daily", "--at", "2026-11-25T07:45+00:00"])
    assert again.exit_code == 0 and "already planned" in again.output
    dry_again = runner.invoke(
        args=["digest", "run", "daily", "--at", "2026-11-25T07:00Z", "--dry-run"]
    )
    assert dry_again.exit_code == 0, dry_again.output
    run_id = rows(app, select(DigestRun.id))[0]
    assert f"already planned (run {run_id})" in dry_again.output


def test_digest_run_rejects_bad_input(app):
    runner = app.test_cli_runner()
    bad_time = runner.invoke(args=["digest", "run", "daily", "--at", "yesterday"])
    assert bad_time.exit_code == 2 and "ISO 8601" in bad_time.output
    bad_frequency = runner.invoke(args=["digest", "run", "hourly"])
    assert bad_frequency.exit_code == 2 and "hourly" in bad_frequency.output
    assert "Traceback" not in bad_time.output + bad_frequency.output


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_run_ending_in_the_future_is_refused_and_nothing_changes(app, dry_run):
    topics = seed_topics(app)
    reader = create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
    start_subscriptions_at(app, reader, at("2026-11-24T07:00"))
    create_article(app, "News", [topics["data"]], at("2026-11-24T12:00"))
    before = stored_state(app)

    result = app.test_cli_runner().invoke(
        args=["digest", "run", "daily", "--at", "2099-01-01T07:00Z", *(["--dry-run"] * dry_run)]
    )

    assert result.exit_code == 2, result.output
    assert "Error: Invalid value for --at: a run cannot end in the future: " in result.output
    assert "2099-01-01 07:00 UTC is later than now" in result.output
    assert "Traceback" not in result.output
    assert count(app, DigestRun) == 0 and count(app, OutboxEmail) == 0
    assert stored_state(app) == before


def test_the_latest_window_end_allowed_is_the_most_recent_whole_hour():
    now = at("2026-11-25T07:30")
    assert check_window_end(at("2026-11-25T07:59"), now) == at("2026-11-25T07:00")
    assert check_window_end(at("2026-11-20T00:00"), now) == at("2026-11-20T00:00")
    with pytest.raises(RunRefused, match="latest run that can be planned ends at 2026-11-25 07:00"):
        check_window_end(at("2026-11-25T08:00"), now)


@pytest.mark.parametrize(
    "value", ["9999-12-31T23:00-01:00", "0001-01-01T00:00+01:00", "2026-13-01"]
)
def test_a_time_out_of_range_is_refused_in_one_line(app, value):
    result = app.test_cli_runner().invoke(args=["digest", "run", "daily", "--at", value])
    assert result.exit_code == 2 and "is not an ISO 8601 time" in result.output, result.output
    assert count(app, DigestRun) == 0


def test_alerts_run_command(app):
    topics = seed_topics(app)
    reader = create_subscriber(app, "reader@example.com", {topics["data"]: "immediately"})
    start_subscriptions_at(app, reader, at("2026-11-24T07:00"))
    create_article(
        app,
        "News",
        [topics["data"]],
        at("2099-01-01T00:00"),
        published=at("2099-01-01T00:00"),
        alerted=False,
    )
    result = app.test_cli_runner().invoke(args=["alerts", "run"])
    assert result.exit_code == 0, result.output
    assert "Immediate alerts: 1 article, 1 email queued, 0 held" in result.output
