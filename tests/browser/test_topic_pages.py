"""The public topic pages pass axe-core at WCAG 2.1 AA at 1280 and 375 px wide, fit a
narrow screen, and lead a reader from a topic to the signup form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from alertsvc.database import transaction
from alertsvc.topics.services import add_topic
from tests.browser.helpers import LiveServer, heading
from tests.browser.test_accessibility import assert_accessible
from tests.factories import create_article, seed_topics

pytestmark = pytest.mark.browser

WIDTHS = [1280, 375]
PAGES = [("/topics", "Topics"), ("/topics/data", "Data"), ("/topics/nhs", "NHS")]


def topics_with_articles(app) -> None:
    topics = seed_topics(app)
    with app.app_context(), transaction():
        add_topic("nhs", "NHS", "", "NHS cyber OR ransomware")
    start = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    for day in range(12):
        create_article(
            app,
            f"Council publishes a rather long-winded data strategy, part {day} of many",
            [topics["data"]],
            start + timedelta(days=day),
        )


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("path", "title"), PAGES, ids=[path for path, _ in PAGES])
def test_topic_pages_have_no_wcag_21_aa_violations(
    page: Page, app, live_server: LiveServer, path: str, title: str, width: int
):
    page.set_viewport_size({"width": width, "height": 800})
    topics_with_articles(app)

    response = page.goto(path)

    assert response is not None and response.status == 200
    expect(heading(page)).to_have_text(title)
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{path} is {scroll_width}px wide at {width}px"
    assert_accessible(page)


def test_a_reader_goes_from_the_topic_list_to_a_prefilled_signup(
    page: Page, app, live_server: LiveServer
):
    topics_with_articles(app)
    page.goto("/")
    page.get_by_role("link", name="See what each topic covers").click()
    page.get_by_role("link", name="Data", exact=True).click()
    expect(heading(page)).to_have_text("Data")
    expect(page.locator(".article-list > li")).to_have_count(10)

    page.get_by_label("Email address").fill("reader@example.com")
    page.get_by_role("button", name="Continue").click()

    expect(heading(page)).to_have_text("Get email alerts")
    assert "topic=data" in page.url and "email=reader%40example.com" in page.url
