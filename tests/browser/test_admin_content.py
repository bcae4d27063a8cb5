"""Operators in Chromium: sign in, add a topic and a feed through the pages.

Every admin page is checked with axe-core at 1280 and 375 px wide in
``test_admin_accessibility.py``."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from alertsvc.extensions import db
from alertsvc.models import Feed, Topic
from tests.browser.helpers import LiveServer, heading, sign_in_as
from tests.factories import create_operator, rows

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
