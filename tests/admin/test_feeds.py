"""Feeds pages: health, add (with the CLI's URL checks), edit, disable and enable (the
poller skips disabled feeds), un-park, and poll now (in the request, like the scheduler)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select, update

from alertsvc.articles.feeds import due_feed_ids
from alertsvc.extensions import db
from alertsvc.models import Article, AuditEntry, Feed, utcnow
from tests.admin.conftest import ADMIN_EMAIL
from tests.admin.helpers import post_form, sign_in
from tests.articles.conftest import FEED_SETTINGS, make_httpserver  # noqa: F401
from tests.articles.helpers import feed_row, rss, rss_items
from tests.factories import count, create_feed, create_operator, rows, seed_topics

RSS = "application/rss+xml; charset=utf-8"


@pytest.fixture
def feeds_admin(app_with: Callable[..., Flask]) -> tuple[Flask, object]:
    """An app that may fetch from the local test server, and an admin signed in to it."""
    feeds_app = app_with(**FEED_SETTINGS)
    create_operator(feeds_app, ADMIN_EMAIL, "admin")
    client = feeds_app.test_client()
    assert sign_in(client, ADMIN_EMAIL).status_code == 302
    return feeds_app, client


def _audit(app: Flask) -> list[tuple]:
    return rows(
        app,
        select(AuditEntry.action, AuditEntry.target, AuditEntry.details)
        .where(AuditEntry.action.like("feed.%"))
        .order_by(AuditEntry.id),
    )


def _set(app: Flask, feed_id: int, **values) -> None:
    with app.app_context():
        db.session.execute(update(Feed).where(Feed.id == feed_id).values(**values))
        db.session.commit()


def test_the_list_shows_each_feeds_health(app: Flask, admin_client):
    seed_topics(app)
    ok = create_feed(app, "https://feeds.example/ok", ["data"], title="Good feed")
    bad = create_feed(app, "https://feeds.example/bad", title="Bad feed")
    now = utcnow()
    _set(app, ok, last_success_at=now, last_polled_at=now, newest_item_at=now)
    _set(
        app,
        bad,
        consecutive_failures=7,
        parked_at=now,
        last_error="HTTP 503 Service Unavailable",
        last_error_at=now,
        newest_item_at=now,
    )
    page = admin_client.get("/admin/feeds").get_data(as_text=True)
    good_row = page.split("Good feed")[1].split("</tr>")[0]
    bad_row = page.split("Bad feed")[1].split("</tr>")[0]
    assert "OK" in good_row and "Data" in good_row
    assert "Parked" in bad_row and "Failing" in bad_row and "HTTP 503" in bad_row
    assert '<td class="number">7</td>' in bad_row


def test_an_admin_adds_a_feed_with_topics(feeds_admin, httpserver):
    feeds_app, client = feeds_admin
    seed_topics(feeds_app)
    url = httpserver.url_for("/new.xml")
    data = {"url": url, "title": "Newsroom", "topics": ["data", "cyber-security"]}
    response = post_form(client, "/admin/feeds/new", data, csrf_from="/admin/feeds/new")
    assert response.status_code == 303
    assert "added" in client.get(response.headers["Location"]).get_data(as_text=True)
    [feed] = rows(feeds_app, select(Feed))
    assert (feed.url, feed.title) == (url, "Newsroom")
    assert [action for action, _, _ in _audit(feeds_app)] == ["feed.create"]
    assert _audit(feeds_app)[0][2]["topics"] == ["cyber-security", "data"]


def test_bad_feeds_are_refused_with_the_clis_checks_and_nothing_stored(app: Flask, admin_client):
    seed_topics(app)
    create_feed(app, "https://feeds.example/there")
    cases = [
        ({"url": ""}, "Enter the feed&#39;s address"),
        ({"url": "ftp://feeds.example/x"}, "Only http and https feeds can be fetched"),
        ({"url": "http://127.0.0.1/feed"}, "resolves to a private, loopback or reserved address"),
        ({"url": "https://feeds.example/there"}, "is already added"),
        ({"url": "https://x.example/" + "a" * 3000}, "2048 characters or fewer"),
        ({"url": "https://feeds.example/y", "topics": ["nope"]}, "Select topics from the list"),
        ({"url": "https://feeds.example/y", "title": "t" * 600}, "500 characters or fewer"),
    ]
    for fields, message in cases:
        response = post_form(admin_client, "/admin/feeds/new", fields, csrf_from="/admin/feeds/new")
        page = response.get_data(as_text=True)
        assert response.status_code == 400, fields
        assert "There is a problem" in page and message in page, (fields, message)
    assert count(app, Feed) == 1
    assert _audit(app) == []


def test_edit_changes_title_and_topics(app: Flask, admin_client):
    seed_topics(app)
    feed_id = create_feed(app, "https://feeds.example/rss", ["data"], title="Old")
    path = f"/admin/feeds/{feed_id}"
    # A line break or tab (a form value may hold them) becomes a space: a name is one line.
    response = post_form(
        admin_client,
        path,
        {"title": "New\r\n\tname ", "topics": ["cyber-security"]},
        csrf_from=path,
    )
    assert response.status_code == 303
    feed = feed_row(app, feed_id)
    assert feed.title == "New name"
    with app.app_context():
        assert [t.slug for t in db.session.get(Feed, feed_id).topics] == ["cyber-security"]
    assert _audit(app) == [
        ("feed.update", f"feed {feed_id}", {"title": "New name", "topics": ["cyber-security"]})
    ]


def test_a_disabled_feed_is_not_polled_until_enabled(app: Flask, admin_client):
    feed_id = create_feed(app, "https://feeds.example/rss")
    with app.app_context():
        assert due_feed_ids(utcnow()) == [feed_id]
    assert post_form(admin_client, f"/admin/feeds/{feed_id}/disable").status_code == 303
    assert feed_row(app, feed_id).disabled_at is not None
    with app.app_context():
        assert due_feed_ids(utcnow()) == []
    page = admin_client.get(f"/admin/feeds/{feed_id}").get_data(as_text=True)
    assert "Disabled" in page and "Enable polling" in page
    post_form(admin_client, f"/admin/feeds/{feed_id}/enable")
    with app.app_context():
        assert due_feed_ids(utcnow()) == [feed_id]
    assert [action for action, _, _ in _audit(app)] == ["feed.disable", "feed.enable"]


def test_unpark_forgets_the_failures(app: Flask, admin_client):
    feed_id = create_feed(app, "https://feeds.example/rss")
    later = utcnow() + timedelta(hours=6)
    _set(app, feed_id, parked_at=utcnow(), consecutive_failures=9, next_poll_at=later)
    assert post_form(admin_client, f"/admin/feeds/{feed_id}/unpark").status_code == 303
    feed = feed_row(app, feed_id)
    assert (feed.parked_at, feed.consecutive_failures, feed.next_poll_at) == (None, 0, None)
    assert _audit(app) == [("feed.unpark", f"feed {feed_id}", {"was_parked": True})]


def test_poll_now_fetches_the_feed_and_shows_the_outcome(feeds_admin, httpserver):
    feeds_app, client = feeds_admin
    seed_topics(feeds_app)
    httpserver.expect_request("/poll.xml").respond_with_data(rss(rss_items(2)), content_type=RSS)
    feed_id = create_feed(feeds_app, httpserver.url_for("/poll.xml"), ["data"])
    _set(feeds_app, feed_id, disabled_at=utcnow())  # an operator may poll a disabled feed

    response = post_form(client, f"/admin/feeds/{feed_id}/poll", follow_redirects=True)
    assert "Polled: 2 new, 0 updated, 0 unchanged." in response.get_data(as_text=True)
    assert count(feeds_app, Article) == 2
    assert feed_row(feeds_app, feed_id).last_success_at is not None
    assert _audit(feeds_app) == [
        ("feed.poll", f"feed {feed_id}", {"outcome": "2 new, 0 updated, 0 unchanged"})
    ]


def test_poll_now_shows_a_failure(feeds_admin, httpserver):
    feeds_app, client = feeds_admin
    httpserver.expect_request("/down.xml").respond_with_data("", status=502)
    feed_id = create_feed(feeds_app, httpserver.url_for("/down.xml"))

    response = post_form(client, f"/admin/feeds/{feed_id}/poll", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "The poll failed: HTTP 502" in page
    assert feed_row(feeds_app, feed_id).consecutive_failures == 1
    assert "HTTP 502" in page.split("Last error")[1]


def test_unknown_feeds_are_404(admin_client):
    assert admin_client.get("/admin/feeds/4040").status_code == 404
    for action in ("poll", "disable", "enable", "unpark"):
        assert post_form(admin_client, f"/admin/feeds/4040/{action}").status_code == 404


def test_a_viewer_sees_feeds_but_cannot_change_them(app: Flask, viewer_client):
    feed_id = create_feed(app, "https://feeds.example/rss")
    assert viewer_client.get("/admin/feeds").status_code == 200
    page = viewer_client.get(f"/admin/feeds/{feed_id}").get_data(as_text=True)
    assert "feeds.example/rss" in page and "Poll now" not in page
    assert post_form(viewer_client, f"/admin/feeds/{feed_id}/disable").status_code == 403
    assert feed_row(app, feed_id).disabled_at is None
    # The add page says why it has no form, instead of a heading over nothing.
    new = viewer_client.get("/admin/feeds/new").get_data(as_text=True)
    assert "Only an admin can add a feed. You are signed in as a viewer." in new
