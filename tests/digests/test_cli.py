from __future__ import annotations

from alertsvc.models import DigestRun, OutboxEmail
from tests.digests.helpers import at, create_article, start_subscriptions_at
from tests.factories import count, create_subscriber, seed_topics


def test_digest_run_command_prints_a_summary(app):
    topics = seed_topics(app)
    reader = create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
    start_subscriptions_at(app, reader, at("2026-11-24T07:00"))
    create_article(app, "News", [topics["data"]], at("2026-11-24T12:00"))
    runner = app.test_cli_runner()

    dry = runner.invoke(args=["digest", "run", "daily", "--at", "2026-11-25T07:00Z", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "1 emails would be queued" in dry.output and "Nothing was written" in dry.output
    assert "reader@example.com: 1 articles (Data)" in dry.output
    assert count(app, OutboxEmail) == 0 and count(app, DigestRun) == 0

    real = runner.invoke(args=["digest", "run", "daily", "--at", "2026-11-25T07:00Z"])
    assert real.exit_code == 0, real.output
    assert "1 subscribers, 1 emails queued" in real.output
    assert count(app, OutboxEmail) == 1

    again = runner.invoke(args=["digest", "run", "daily", "--at", "2026-11-25T07:45+00:00"])
    assert again.exit_code == 0 and "already planned" in again.output


def test_digest_run_rejects_bad_input(app):
    runner = app.test_cli_runner()
    bad_time = runner.invoke(args=["digest", "run", "daily", "--at", "yesterday"])
    assert bad_time.exit_code == 2 and "ISO 8601" in bad_time.output
    bad_frequency = runner.invoke(args=["digest", "run", "hourly"])
    assert bad_frequency.exit_code == 2 and "hourly" in bad_frequency.output
    assert "Traceback" not in bad_time.output + bad_frequency.output


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
    assert "1 articles, 1 emails queued" in result.output
