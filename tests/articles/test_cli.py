"""What ``alertsvc feeds …``, ``articles …`` and ``topics preview`` print for a person."""

from __future__ import annotations

import json

from alertsvc.articles import jobs
from alertsvc.extensions import db
from alertsvc.models import Feed, utcnow
from tests.articles.helpers import feed_row, rss, rss_items
from tests.factories import create_feed, seed_topics

RSS_CONTENT_TYPE = "application/rss+xml; charset=utf-8"


def poll(app, feed_id: int) -> None:
    with app.app_context():
        jobs.poll_feeds([feed_id], due_only=False)
        db.session.remove()


def test_feeds_list_drops_the_last_error_once_the_feed_succeeds(feeds_app, httpserver, cli):
    seed_topics(feeds_app)
    httpserver.expect_ordered_request("/flaky").respond_with_data("", status=502)
    httpserver.expect_ordered_request("/flaky").respond_with_data(
        rss(rss_items(1)), content_type=RSS_CONTENT_TYPE
    )
    feed_id = create_feed(feeds_app, httpserver.url_for("/flaky"), ["data"])

    poll(feeds_app, feed_id)
    failing = cli("feeds", "list").output
    assert "1 failure in a row" in failing
    assert "last error" in failing and "HTTP 502" in failing

    poll(feeds_app, feed_id)
    recovered = cli("feeds", "list").output
    assert "0 failures in a row" in recovered
    assert "last error" not in recovered and "HTTP 502" not in recovered
    assert "HTTP 502" in feed_row(feeds_app, feed_id).last_error, "kept, just not shown"


def test_counts_of_one_are_singular(app, tmp_path):
    seed_topics(app)
    path = tmp_path / "one.json"
    path.write_text(
        json.dumps([{"title": "Ransomware", "url": "https://news.example.org/1"}]),
        encoding="utf-8",
    )
    runner = app.test_cli_runner()

    imported = runner.invoke(args=["articles", "import", str(path), "--topic", "data"])
    assert imported.exit_code == 0, imported.output
    assert "Importing 1 article" in imported.output and "1 articles" not in imported.output

    preview = runner.invoke(args=["topics", "preview", "ransomware", "--days", "1"])
    assert preview.output.splitlines()[-1] == "1 article from the last 1 day matches."
    nothing = runner.invoke(args=["topics", "preview", "nhs", "--days", "1"])
    assert nothing.output == "No articles from the last 1 day match nhs.\n"


def test_feeds_list_flags_a_disabled_feed_and_feeds_poll_skips_it(feeds_app, cli):
    feed_id = create_feed(feeds_app, "https://feeds.example/off.xml")
    with feeds_app.app_context():
        db.session.get(Feed, feed_id).disabled_at = utcnow()
        db.session.commit()
    listing = cli("feeds", "list").output
    assert "DISABLED since" in listing and f"enabled at /admin/feeds/{feed_id}" in listing
    assert cli("feeds", "poll").output == "No feeds are due.\n"
