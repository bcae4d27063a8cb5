"""Feed polls fail small: a failing feed backs off, is parked, and is retried by hand."""

from __future__ import annotations

from datetime import timedelta

from alertsvc.articles import jobs
from alertsvc.extensions import db
from alertsvc.models import Article, Feed, utcnow
from alertsvc.scheduler import build_scheduler
from tests.articles.helpers import feed_row, rss, rss_items
from tests.factories import count, create_feed, seed_topics

RSS = "application/rss+xml; charset=utf-8"


def poll(app, *feed_ids: int):
    with app.app_context():
        results = jobs.poll_feeds(list(feed_ids), due_only=False)
        db.session.remove()
        return results


def test_a_failing_feed_is_parked_after_the_limit_and_retried_by_hand(app_with, httpserver):
    app = app_with(
        FEEDS_ALLOW_PRIVATE_ADDRESSES=True,
        FEEDS_POLL_INTERVAL_SECONDS=600,
        FEEDS_MAX_BACKOFF_SECONDS=3000,
        JOB_MAX_ATTEMPTS=3,
    )
    seed_topics(app)
    httpserver.expect_request("/down").respond_with_data("", status=503)
    httpserver.expect_request("/up").respond_with_data(
        rss(rss_items(2, prefix="up")), content_type=RSS
    )
    down = create_feed(app, httpserver.url_for("/down"), ["data"])
    up = create_feed(app, httpserver.url_for("/up"), ["data"])

    poll(app, down, up)
    assert count(app, Article) == 2, "the healthy feed's articles arrived"
    feed = feed_row(app, down)
    assert feed.consecutive_failures == 1 and feed.parked_at is None
    assert feed.next_poll_at == feed.last_error_at + timedelta(seconds=600)
    assert feed.last_error.startswith("HTTP 503")

    poll(app, down)
    assert feed_row(app, down).parked_at is None
    poll(app, down)
    feed = feed_row(app, down)
    assert feed.consecutive_failures == 3 and feed.parked_at is not None

    # Even once its backoff has passed, the scheduler leaves a parked feed alone.
    with app.app_context():
        db.session.get(Feed, down).next_poll_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
    httpserver.clear_log()
    build_scheduler(app, lock=None).get_job("poll_due_feeds").func()
    assert [request.path for request, _ in httpserver.log] == []

    runner = app.test_cli_runner()
    listing = runner.invoke(args=["feeds", "list"])
    assert listing.exit_code == 0, listing.output
    assert "3 failures in a row" in listing.output
    assert f"not polled until retried (alertsvc feeds retry {down})" in listing.output
    assert "HTTP 503" in listing.output

    still_down = runner.invoke(args=["feeds", "retry", str(down)])
    assert still_down.exit_code == 1
    assert f"feed {down} " in still_down.output and "error: HTTP 503" in still_down.output
    feed = feed_row(app, down)
    assert (feed.consecutive_failures, feed.parked_at) == (1, None), "counted afresh"

    httpserver.clear()
    httpserver.expect_request("/down").respond_with_data(
        rss(rss_items(1, prefix="back")), content_type=RSS
    )
    retried = runner.invoke(args=["feeds", "retry", str(down)])
    assert retried.exit_code == 0, retried.output
    assert f"feed {down} " in retried.output and "1 new" in retried.output
    feed = feed_row(app, down)
    assert (feed.consecutive_failures, feed.parked_at) == (0, None)

    missing = runner.invoke(args=["feeds", "retry", "999999"])
    assert missing.exit_code == 1
    assert missing.output.strip() == "Error: No feed 999999."
