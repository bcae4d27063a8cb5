"""``alertsvc topics add|list`` and ``alertsvc seed-demo``, through Flask's CLI runner."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from alertsvc.models import Topic
from alertsvc.topics.services import DEMO_TOPICS
from tests.factories import count, create_topic, rows


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def invoke(*args: str):
        return runner.invoke(args=list(args))

    return invoke


def _topics(app) -> list[tuple[str, str, str]]:
    return rows(app, select(Topic.slug, Topic.name, Topic.description).order_by(Topic.slug))


def test_add_a_topic(cli, app):
    result = cli(
        "topics", "add", "ai-and-automation", "  AI and automation ", "--description", "Robots."
    )

    assert result.exit_code == 0, result.output
    assert result.output == "Added topic ai-and-automation: AI and automation\n"
    assert _topics(app) == [("ai-and-automation", "AI and automation", "Robots.")]


def test_list_topics(cli, app):
    assert cli("topics", "list").output == (
        "No topics yet. Add one with: alertsvc topics add SLUG NAME\n"
    )
    create_topic(app, "data", "Data")
    create_topic(app, "cyber-security", "Cyber security")

    result = cli("topics", "list")

    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "cyber-security  Cyber security",
        "data            Data",
    ]


def test_a_duplicate_slug_is_refused(cli, app):
    create_topic(app, "data", "Data")

    result = cli("topics", "add", "data", "Data again")

    assert result.exit_code != 0
    assert "Error: a topic with slug 'data' already exists" in result.output
    assert _topics(app) == [("data", "Data", "")]


@pytest.mark.parametrize(
    "slug",
    ["Data", "data science", "data--science", "-data", "data-", "dátá", "data\n", "x" * 81, ""],
)
def test_a_bad_slug_is_refused(slug, cli, app):
    result = cli("topics", "add", "--", slug, "Data")

    assert result.exit_code != 0
    assert "must be lower-case letters and digits separated by single hyphens" in result.output
    assert count(app, Topic) == 0


@pytest.mark.parametrize(
    "name",
    [
        "Data\nBcc: evil@example.com",
        "Data\r\nscience",
        "Data\rscience",
        "Data\tscience",
        "Data\x85science",
        "Data\u2028science",
        "Data\u2029science",
        "Data \u202emoc.elpmaxe",  # a right-to-left override: the admin pages refuse it too
        "Data\u2066science",
    ],
)
def test_a_name_with_a_line_break_or_control_character_is_refused(name, cli, app):
    result = cli("topics", "add", "data", name)

    assert result.exit_code != 0
    assert "Error: name must not contain line breaks or control characters" in result.output
    assert count(app, Topic) == 0


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_a_blank_or_overlong_name_is_refused(name, cli, app):
    result = cli("topics", "add", "data", name)

    assert result.exit_code != 0
    assert "Error: name must be between 1 and 200 characters" in result.output
    assert count(app, Topic) == 0


def test_seed_demo_creates_the_demo_topics_and_is_idempotent(cli, app):
    create_topic(app, "data", "Data (ours)")

    first = cli("seed-demo")
    second = cli("seed-demo")

    total = len(DEMO_TOPICS)
    assert first.exit_code == 0 and second.exit_code == 0
    assert first.output == f"Demo topics: {total - 1} created, 1 already there\n"
    assert second.output == f"Demo topics: 0 created, {total} already there\n"
    assert count(app, Topic) == total
    assert ("data", "Data (ours)", "") in _topics(app), "an existing topic is left alone"
    listed = cli("topics", "list").output
    assert "digital-government" in listed and "Cyber security" in listed


def test_a_name_another_topic_has_is_refused_in_any_case(cli, app):
    """Two topics named alike would be two choices readers cannot tell apart on the form."""
    assert cli("topics", "add", "data", "Data").exit_code == 0

    result = cli("topics", "add", "data-two", "DATA")

    assert result.exit_code == 1
    assert "Error: name 'DATA' is taken by topic 'data'" in result.output
    assert count(app, Topic) == 1
