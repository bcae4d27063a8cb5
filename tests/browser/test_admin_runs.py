"""An operator in the browser: find a subscriber and preview their next digest, dry-run then
run a digest, watch it in the runs list, see the audit entries. Every page on the way passes
axe-core at WCAG 2.1 AA at 1280 and 375 px wide, with no sideways scrolling of the page."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from alertsvc.digests.schedule import floor_hour
from alertsvc.models import utcnow
from tests.browser.helpers import heading, sign_in_as
from tests.browser.test_accessibility import AXE_OPTIONS, assert_accessible, axe, describe
from tests.digests.helpers import start_subscriptions_at
from tests.factories import (
    create_article,
    create_operator,
    create_subscriber,
    seed_topics,
)
from tests.mail import Mailbox

pytestmark = pytest.mark.browser

OPERATOR = "ops@publisher.example"
READER = "reader@example.com"
WIDTHS = (1280, 375)
NO_REFRESH_RULE = {**AXE_OPTIONS, "rules": {"meta-refresh": {"enabled": False}}}


def _due_reader(app) -> tuple[int, datetime]:
    """A reader in UTC whose daily hour is the one that has just ended, with an article
    waiting, so both their next digest and the run ending now have something in them; and
    that hour (the run to ask for, even if the clock passes the hour during the test)."""
    topics = seed_topics(app)
    end = floor_hour(utcnow())
    reader = create_subscriber(
        app,
        READER,
        {topics["data"]: "daily", topics["cyber-security"]: "daily"},
        timezone="UTC",
        daily_hour=end.hour,
    )
    start_subscriptions_at(app, reader, end - timedelta(days=1))
    create_article(app, "Open data strategy", [topics["data"]], end - timedelta(hours=2))
    return reader, end


def _check(page: Page, *, allow_refresh: bool = False) -> None:
    """axe at each width, and the page itself never wider than the window.

    ``allow_refresh``: the page reloads itself because the operator chose to watch a run
    (and a "Stop reloading" link ends it), which WCAG 2.2.1 allows ("turn off"); axe's
    meta-refresh rule cannot tell a chosen refresh from an imposed one, so it is left out
    there, and only there.
    """
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        if allow_refresh:
            violations = axe.run(page, options=NO_REFRESH_RULE).response["violations"]
            assert not violations, f"{page.url}\n{describe(violations)}"
        else:
            assert_accessible(page)
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width, f"{page.url} is {scroll_width}px wide at {width}"
    page.set_viewport_size({"width": 1280, "height": 800})


def test_operator_previews_a_digest_runs_one_and_sees_the_audit(
    page: Page, live_server, mailbox: Mailbox
) -> None:
    app = live_server.app
    create_operator(app, OPERATOR, "admin")
    _reader, end = _due_reader(app)
    sign_in_as(page, OPERATOR)

    page.get_by_role("link", name="Subscribers").click()
    expect(heading(page)).to_have_text("Subscribers")
    _check(page)
    page.get_by_label("Email address").fill("reader@")
    page.get_by_role("button", name="Find").click()
    _check(page)
    page.get_by_role("link", name=READER).click()
    expect(heading(page)).to_contain_text("Subscriber")
    expect(page.get_by_text("Open data strategy")).to_have_count(0)
    _check(page)

    page.get_by_role("link", name="Preview their next daily digest").click()
    expect(heading(page)).to_have_text("Their next daily digest")
    expect(page.locator("pre")).to_contain_text("Open data strategy")
    frame = page.frame_locator("iframe.email-preview")
    expect(frame.get_by_text("Open data strategy")).to_be_visible()
    _check(page)

    page.get_by_role("link", name="Runs", exact=True).click()
    expect(heading(page)).to_have_text("Digest runs")
    _check(page)
    page.get_by_role("link", name="Run a digest now").click()
    _check(page)
    page.get_by_label("Daily").check()
    page.get_by_label("Window end (UTC, optional)").fill(f"{end:%Y-%m-%dT%H:%M}")
    page.get_by_role("button", name="Preview the run").click()
    expect(heading(page)).to_contain_text("Dry run: daily digest")
    expect(page.get_by_text("emails would be queued")).to_be_visible()
    _check(page)
    page.get_by_role("button", name="Run it: queue 1 email").click()
    expect(heading(page)).to_contain_text("daily, ending")
    expect(page.get_by_role("status")).to_contain_text("queued 1 email for 1 subscriber")
    expect(page.locator('meta[http-equiv="refresh"]')).to_have_count(0)
    _check(page)
    # Asked to, the run's page reloads itself while its email waits (no script).
    page.get_by_role("link", name="Watch its progress").click()
    expect(page.locator('meta[http-equiv="refresh"]')).to_have_count(1)
    expect(page.get_by_role("link", name="Stop reloading")).to_be_visible()
    _check(page, allow_refresh=True)

    assert [m["To"] for m in mailbox.deliver()] == [READER]
    page.get_by_role("link", name="All runs").click()
    row = page.get_by_role("row").filter(has_text="operator")
    expect(row).to_contain_text("done")
    expect(row.get_by_role("cell").nth(6)).to_have_text("1")  # sent

    page.get_by_role("link", name="Audit log").click()
    expect(heading(page)).to_have_text("Audit log")
    expect(page.get_by_role("cell", name="run.trigger", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name=f"operator:{OPERATOR}").first).to_be_visible()
    _check(page)


def test_run_now_refuses_a_future_window_end_accessibly(page: Page, live_server) -> None:
    create_operator(live_server.app, OPERATOR, "admin")
    sign_in_as(page, OPERATOR)
    page.goto("/admin/runs/new")
    later = floor_hour(utcnow()) + timedelta(hours=3)
    page.get_by_label("Window end (UTC, optional)").fill(f"{later:%Y-%m-%dT%H:%M}")
    page.get_by_role("button", name="Preview the run").click()
    expect(page.get_by_role("alert")).to_contain_text("cannot end in the future")
    _check(page)


def test_erase_confirm_page_is_accessible(page: Page, live_server) -> None:
    app = live_server.app
    create_operator(app, OPERATOR, "admin")
    reader, _end = _due_reader(app)
    sign_in_as(page, OPERATOR)
    page.goto(f"/admin/subscribers/{reader}/erase")
    expect(heading(page)).to_have_text(f"Erase subscriber {reader}?")
    _check(page)
    page.get_by_role("button", name=f"Erase subscriber {reader}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Subscriber {reader} was erased.")
    _check(page)
