"""Every ``alertsvc`` command answers bad input with one clear line and a non-zero exit.

The commands run through the real ``alertsvc`` group (``build_cli``), as an operator
runs them, against the test app.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask
from flask_migrate import upgrade

from alertsvc.cli import build_cli
from alertsvc.extensions import db
from tests.conftest import fresh_postgres_database
from tests.factories import create_topic, stored_state


def run(flask_app: Flask, *args: str) -> Result:
    return flask_app.test_cli_runner().invoke(build_cli(), list(args))


def assert_one_clear_line(result: Result, message: str, exit_code: int) -> None:
    assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert result.output.splitlines()[-1] == errors[0]


BIG = "9" * 23  # past a database integer: it raised OverflowError (a traceback)

# (arguments, the message, the exit code: 1 for a refusal, 2 for a malformed command line)
BAD_INPUT = {
    "missing id": [
        (["feeds", "poll", "999"], "no feed with id 999: see alertsvc feeds list", 1),
        (["feeds", "map-category", "Data", "data", "--feed", "999"], "no feed with id 999", 1),
        (["api-tokens", "revoke", "nobody"], "no live token named 'nobody'", 1),
        (["articles", "import", "{tmp}/missing.json"], "does not exist", 2),
    ],
    "malformed argument": [
        (["topics", "add", "Bad Slug", "Name"], "slug 'Bad Slug' must be lower-case", 1),
        (["topics", "add-keyword", "kw", "Name", '"open'], "a quote is not closed", 1),
        (["topics", "preview", "OR"], "OR must stand between two words or phrases", 1),
        (["topics", "preview", "NHS", "--days", "0"], "0 is not in the range", 2),
        (["feeds", "add", "ftp://example.org/feed", "--topic", "data"], "only http and https", 1),
        (["feeds", "poll", "abc"], "'abc' is not a valid integer", 2),
        (["feeds", "map-category", "Data", "data", "--feed", "x"], "not a valid integer", 2),
        (["feeds", "map-category", " ", "data"], "the category must have some text", 1),
        (
            ["articles", "add", "--title", "T", "--url", "nope", "--topic", "data"],
            "url: Not a valid URL.",
            1,
        ),
        (
            [
                *("articles", "add", "--title", "T", "--url", "https://x.org/1"),
                *("--topic", "data", "--published", "yesterday"),
            ],
            "published: Not a valid datetime.",
            1,
        ),
        (["articles", "import", "{tmp}/not-a-feed.xml"], "not an RSS or Atom feed", 1),
        (["api-tokens", "create", " "], "the token name must be 1 to 100 characters", 1),
        (["digest", "run", "daily", "--at", "yesterday"], "is not an ISO 8601 time", 2),
        (["digest", "run", "daily", "--at", "2099-01-01T00:00Z"], "cannot end in the future", 2),
        (
            ["digest", "run", "weekly", "--at", "0001-01-01T00:00Z"],
            "cannot end before 1970-01-01 00:00 UTC: 0001-01-01 00:00 UTC is too early",
            2,
        ),
        (
            ["suppressions", "add", "ok@example.org", "--detail", "d" * 501],
            "Invalid value for --detail: at most 500 characters (this one has 501)",
            2,
        ),
        (["alerts", "run", "now"], "Got unexpected extra argument (now)", 2),
        (["seed-demo", "again"], "Got unexpected extra argument (again)", 2),
        (["worker", "--burst", "now"], "Got unexpected extra argument (now)", 2),
        (["topics", "list", "all"], "Got unexpected extra argument (all)", 2),
        (["feeds", "list", "all"], "Got unexpected extra argument (all)", 2),
        (["feeds", "categories", "all"], "Got unexpected extra argument (all)", 2),
    ],
    "id past any row": [
        (["feeds", "poll", BIG], f"{BIG} is not in the range 1<=x<=2147483647", 2),
        (["feeds", "retry", BIG], "is not in the range", 2),
        (["feeds", "map-category", "Data", "data", "--feed", BIG], "is not in the range", 2),
        (["alerts", "retry", BIG], "is not in the range", 2),
        (["digest", "retry", BIG], "is not in the range", 2),
        (["suppressions", "list", "--limit", BIG], "is not in the range", 2),
        (["articles", "import", "{tmp}/deep.json"], "the JSON is nested too deeply", 1),
    ],
    "unknown slug": [
        (["topics", "add", "data", "Data"], "a topic with slug 'data' already exists", 1),
        (
            ["feeds", "add", "http://127.0.0.1:9/feed", "--topic", "nope"],
            "no such topic: nope",
            1,
        ),
        (["feeds", "map-category", "Data", "nope"], "no topic with slug 'nope'", 1),
        (
            ["articles", "add", "--title", "T", "--url", "https://x.org/1", "--topic", "nope"],
            "no such topic: nope",
            1,
        ),
        (["articles", "import", "{tmp}/articles.json", "--topic", "nope"], "no such topic", 1),
        (["digest", "run", "hourly"], "'hourly' is not one of 'daily', 'weekly'", 2),
    ],
}
CASES = [
    pytest.param(args, message, exit_code, id=f"{kind}: {' '.join(args)}")
    for kind, cases in BAD_INPUT.items()
    for args, message, exit_code in cases
]


@pytest.fixture
def cli_app(app_with: Callable[..., Flask]) -> Flask:
    """Loopback feed addresses allowed, so ``feeds add`` gets as far as its topics."""
    return app_with(FEEDS_ALLOW_PRIVATE_ADDRESSES=True)


@pytest.mark.parametrize(("args", "message", "exit_code"), CASES)
def test_bad_input_is_one_clear_line_and_changes_nothing(
    cli_app, tmp_path, args, message, exit_code
):
    create_topic(cli_app)
    (tmp_path / "articles.json").write_text(
        json.dumps([{"title": "T", "url": "https://x.org/1"}]), encoding="utf-8"
    )
    (tmp_path / "not-a-feed.xml").write_text("<html>", encoding="utf-8")
    (tmp_path / "deep.json").write_text("[" * 10_000 + "]" * 10_000, encoding="utf-8")
    before = stored_state(cli_app)

    result = run(cli_app, *(arg.replace("{tmp}", str(tmp_path)) for arg in args))

    assert_one_clear_line(result, message, exit_code)
    assert stored_state(cli_app) == before


def _empty_databases(tmp_path: Path) -> list[str]:
    """An empty SQLite file, and an empty PostgreSQL database when the suite runs on one."""
    path = tmp_path / "empty.sqlite3"
    path.touch()
    urls = [f"sqlite:///{path}"]
    base = os.environ.get("ALERTSVC_TEST_DATABASE_URL")
    if base:
        urls.append(fresh_postgres_database(base, f"empty_{os.getpid()}"))
    return urls


@pytest.mark.parametrize(
    "args",
    [
        ["topics", "list"],
        ["seed-demo"],
        ["feeds", "list"],
        ["feeds", "poll", "1"],
        ["articles", "add", "--title", "T", "--url", "https://x.org/1", "--topic", "data"],
        ["api-tokens", "create", "newsroom"],
        ["digest", "run", "daily"],
        ["alerts", "run"],
        ["alerts", "retry", "1"],
        ["digest", "retry", "1"],
        ["worker", "--burst"],
        ["worker"],
        ["scheduler"],
    ],
    ids=" ".join,
)
def test_a_database_without_a_schema_says_to_run_db_upgrade(app_with, tmp_path, args):
    for url in _empty_databases(tmp_path):
        flask_app = app_with(SQLALCHEMY_DATABASE_URI=url)

        result = run(flask_app, *args)

        assert_one_clear_line(
            result, "the database has no tables yet: run `alertsvc db upgrade` first", 1
        )
        with flask_app.app_context():
            assert db.inspect(db.engine).get_table_names() == [], "nothing was created"


@pytest.mark.parametrize("args", [["topics", "list"], ["worker"], ["scheduler"]], ids=" ".join)
def test_a_database_behind_the_code_says_to_run_db_upgrade(app_with, tmp_path, args):
    flask_app = app_with(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'old.sqlite3'}")
    with flask_app.app_context():
        upgrade(revision="0001_initial")

    result = run(flask_app, *args)

    assert_one_clear_line(
        result, "the database schema is older than this version: run `alertsvc db upgrade`", 1
    )


def test_feeds_add_reports_an_unknown_topic_before_looking_the_host_up(app):
    """The default app checks hosts in DNS; a typo in a slug must not hide behind that."""
    create_topic(app)

    result = run(app, "feeds", "add", "https://no-such-host.invalid/feed", "--topic", "nope")

    assert_one_clear_line(result, "no such topic: nope", 1)


def test_feeds_add_without_a_scheme_says_it_is_not_a_web_address(app):
    create_topic(app)

    result = run(app, "feeds", "add", "example.org/feed", "--topic", "data")

    assert_one_clear_line(result, "'example.org/feed' is not a web address (http or https)", 1)


def test_articles_import_with_an_unknown_topic_prints_only_the_error(app, tmp_path):
    create_topic(app)
    path = tmp_path / "articles.json"
    path.write_text(json.dumps([{"title": "T", "url": "https://x.org/1"}]), encoding="utf-8")

    result = run(app, "articles", "import", str(path), "--topic", "nope")

    assert result.exit_code == 1
    assert result.output == "Error: no such topic: nope\n"
