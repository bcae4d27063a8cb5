"""Operators in Chromium: sign in, add a topic and a feed through the pages; the dashboard,
topics, feeds and articles pages pass axe-core (WCAG 2.1 AA) at 1280 and 375 px wide, and
fit a phone's width (wide tables scroll in their own box)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select, update

from alertsvc.extensions import db
from alertsvc.models import Feed, Topic, utcnow
from tests.browser.helpers import LiveServer, heading, sign_in_as
from tests.browser.test_accessibility import assert_accessible
from tests.factories import (
    create_article,
    create_feed,
    create_operator,
    create_subscriber,
    rows,
    seed_topics,
)

pytestmark = pytest.mark.browser

ADMIN = "ops@publisher.example"
# A public address written as an IP: accepted by the URL check without a DNS lookup, and
# never fetched (no scheduler runs in the browser tests).
FEED_URL = "https://93.184.215.14/newsroom.xml"


def sign_in(page: Page, live_server: LiveServer) -> None:
    create_operator(live_server.app, ADMIN, "admin")
    sign_in_as(page, ADMIN)


def test_an_operator_adds_a_topic_and_a_feed(page: Page, live_server: LiveServer):
    sign_in(page, live_server)
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Topics").click()
    page.get_by_role("link", name="Add a topic").click()
    page.get_by_label("Slug").fill("open-data")
    page.get_by_label("Name").fill("Open data")
    page.get_by_label("Description").fill("Datasets and the people who publish them.")
    page.get_by_role("button", name="Add topic").click()
    expect(heading(page)).to_contain_text("Open data")
    expect(page.get_by_role("status")).to_contain_text("Topic Open data added.")

    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Feeds").click()
    page.get_by_role("link", name="Add a feed").click()
    page.get_by_label("Feed address (URL)").fill(FEED_URL)
    page.get_by_label("Name (optional)").fill("Newsroom")
    page.get_by_label("Open data").check()
    page.get_by_role("button", name="Add feed").click()
    expect(heading(page)).to_have_text("Newsroom")
    expect(page.get_by_role("status")).to_contain_text("added")

    app = live_server.app
    assert rows(app, select(Topic.slug, Topic.name)) == [("open-data", "Open data")]
    with app.app_context():
        feed = db.session.scalars(select(Feed)).one()
        assert (feed.url, feed.title, [t.slug for t in feed.topics]) == (
            FEED_URL,
            "Newsroom",
            ["open-data"],
        )


def _content(live_server: LiveServer) -> dict[str, str]:
    """Rows for every page to show: topics with subscribers, feeds in each state, an article."""
    app = live_server.app
    topics = seed_topics(app)
    create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
    now = utcnow()
    ok = create_feed(app, "https://93.184.215.14/ok.xml", ["data"], title="Healthy feed")
    bad = create_feed(app, "https://93.184.215.14/bad.xml", title="")
    with app.app_context():
        db.session.execute(
            update(Feed).where(Feed.id == ok).values(last_success_at=now, newest_item_at=now)
        )
        db.session.execute(
            update(Feed)
            .where(Feed.id == bad)
            .values(
                consecutive_failures=6,
                parked_at=now,
                last_error="HTTP 503 Service Unavailable from a very long address " * 3,
                last_error_at=now,
                newest_item_at=now - timedelta(days=40),
            )
        )
        db.session.execute(
            update(Topic).where(Topic.slug == "local-digital").values(retired_at=now)
        )
        db.session.execute(
            update(Topic).where(Topic.slug == "data").values(query='data OR "open data"')
        )
        db.session.commit()
    article = create_article(
        app,
        "Open data strategy published for every council",
        [topics["data"]],
        now - timedelta(hours=3),
        summary="<p>The strategy <strong>covers</strong> data sharing.</p>",
    )
    return {
        "dashboard": "/admin/",
        "topics": "/admin/topics",
        "topic": f"/admin/topics/{topics['data']}?preview=1",
        "new topic": "/admin/topics/new",
        "feeds": "/admin/feeds",
        "feed": f"/admin/feeds/{bad}",
        "new feed": "/admin/feeds/new",
        "articles": "/admin/articles?q=data",
        "article": f"/admin/articles/{article}",
    }


@pytest.mark.parametrize("width", [1280, 375])
def test_content_pages_are_accessible_and_fit_the_width(
    page: Page, live_server: LiveServer, width: int
):
    paths = _content(live_server)
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, live_server)
    for name, path in paths.items():
        page.goto(path)
        expect(heading(page)).to_be_visible()
        if name == "dashboard":
            page.get_by_text("Emails per day as a table").click()  # open the details
        assert_accessible(page)
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= width, f"{name} is {overflow}px wide at {width}px"
    # Errors shown on a form are accessible too.
    page.goto("/admin/topics/new")
    page.get_by_role("button", name="Add topic").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter a slug")
    assert_accessible(page)
