"""The commands that change things leave an audit entry from ``cli:<user>``; refusals and
dry runs leave none, and no entry names a subscriber's address."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from alertsvc.models import AuditEntry
from tests.digests.helpers import at, start_subscriptions_at
from tests.factories import create_article, create_subscriber, rows, seed_topics


def entries(app: Flask) -> list[tuple[str, str, dict]]:
    found = rows(app, select(AuditEntry).order_by(AuditEntry.id))
    assert all(entry.actor.startswith("cli:") and entry.client == "cli" for entry in found)
    return [(entry.action, entry.target, entry.details) for entry in found]


def invoke(app: Flask, *args: str):
    result = app.test_cli_runner().invoke(args=list(args))
    return result


def test_topics_add_is_audited_and_a_refusal_is_not(app: Flask) -> None:
    assert invoke(app, "topics", "add", "ai", "Artificial intelligence").exit_code == 0
    assert invoke(app, "topics", "add", "ai", "Again").exit_code == 1
    assert entries(app) == [("topic.create", "topic ai", {"name": "Artificial intelligence"})]


def test_sending_pause_and_resume_are_audited(app: Flask) -> None:
    assert invoke(app, "sending", "pause", "--reason", "checking bounces").exit_code == 0
    assert invoke(app, "sending", "pause", "--reason", "again").exit_code == 0  # already
    assert invoke(app, "sending", "resume").exit_code == 0
    assert invoke(app, "sending", "resume").exit_code == 0  # nothing to resume
    assert [(action, target) for action, target, _ in entries(app)] == [
        ("sending.pause", "sending: subscriptions"),
        ("sending.resume", "sending: every pause"),
    ]


def test_suppressions_are_audited_without_the_address(app: Flask) -> None:
    assert invoke(app, "suppressions", "add", "Bounced@Example.org").exit_code == 0
    assert invoke(app, "suppressions", "remove", "bounced@example.org").exit_code == 0
    audited = entries(app)
    assert [action for action, _, _ in audited] == ["suppression.add", "suppression.remove"]
    assert audited[0][1] == audited[1][1]
    assert "example.org" not in str(audited).lower()


def test_api_tokens_are_audited(app: Flask) -> None:
    assert invoke(app, "api-tokens", "create", "newsroom").exit_code == 0
    assert invoke(app, "api-tokens", "revoke", "newsroom").exit_code == 0
    assert entries(app) == [
        ("token.create", "token newsroom", {"scopes": ["articles:write"]}),
        ("token.revoke", "token newsroom", {}),
    ]


def test_a_digest_run_is_audited_and_a_dry_run_is_not(app: Flask) -> None:
    topics = seed_topics(app)
    reader = create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
    start_subscriptions_at(app, reader, at("2026-11-24T07:00"))
    create_article(app, "One", [topics["data"]], at("2026-11-24T12:00"))
    dry = invoke(app, "digest", "run", "daily", "--at", "2026-11-25T07:00Z", "--dry-run")
    assert dry.exit_code == 0 and entries(app) == []
    real = invoke(app, "digest", "run", "daily", "--at", "2026-11-25T07:00Z")
    assert real.exit_code == 0, real.output
    [(action, target, details)] = entries(app)
    assert action == "run.trigger" and target.startswith("run ")
    # The same entry as the runs page and the API write (digests.runs.record_run_trigger).
    assert details == {
        "frequency": "daily",
        "window_end": "2026-11-25T07:00:00+00:00",
        "subscribers": 1,
        "emails": 1,
        "already_planned": False,
    }


def test_feeds_and_articles_added_are_audited(app_with) -> None:
    app = app_with(FEEDS_ALLOW_PRIVATE_ADDRESSES=True)
    seed_topics(app)
    added = invoke(app, "feeds", "add", "http://127.0.0.1:9/feed.xml", "--topic", "data")
    assert added.exit_code == 0, added.output
    article = invoke(
        app,
        "articles",
        "add",
        "--title",
        "Open data",
        "--url",
        "https://news.example/open-data",
        "--topic",
        "data",
    )
    assert article.exit_code == 0, article.output
    assert [action for action, _, _ in entries(app)] == ["feed.create", "article.create"]
