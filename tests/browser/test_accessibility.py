"""Every subscriber page passes axe-core at WCAG 2.1 AA, and reflows at 320px wide.

Each case reaches its page the way a person would (a form, an emailed link) where that is
quick, or with a signed link made by the live app where the way there is not the point.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from playwright.sync_api import Page, expect

from alertsvc.tokens import TokenPurpose

# test_admin_runs.py (and others) import axe from here.
from tests.browser.axe_report import axe as axe
from tests.browser.axe_report import run_axe
from tests.browser.helpers import LiveServer, email_link, heading, open_email
from tests.factories import create_subscriber, seed_topics
from tests.mail import Mailbox

pytestmark = pytest.mark.browser

WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": WCAG_21_AA}, "resultTypes": ["violations"]}


def describe(violations: list[dict]) -> str:
    lines = [f"{len(violations)} axe violation(s):"]
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        lines.append(f"  {violation['helpUrl']}")
        for node in violation["nodes"]:
            lines.append(f"    at {' '.join(map(str, node['target']))}: {node['html'][:200]}")
            summary = (node.get("failureSummary") or "").replace("\n", " / ")
            if summary:
                lines.append(f"      {summary}")
    return "\n".join(lines)


def assert_accessible(page: Page) -> None:
    violations = run_axe(page, AXE_OPTIONS)
    assert not violations, f"{page.url}\n{describe(violations)}"


def sign_up(page: Page, email: str = "reader@example.com") -> None:
    page.goto("/")
    page.get_by_label("Data", exact=True).check()
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Subscribe").click()
    expect(heading(page)).to_have_text("Check your email")


def open_confirm_link(page: Page, mailbox: Mailbox) -> None:
    sign_up(page)
    mailbox.deliver()
    open_email(page, "Confirm your email alerts: Data")
    email_link(page, "/confirm/").click()
    expect(heading(page)).to_have_text("Confirm your subscription")


def subscribed_reader(app) -> int:
    topics = seed_topics(app)
    return create_subscriber(
        app, "reader@example.com", {topics["data"]: "daily", topics["cyber-security"]: "weekly"}
    )


def expired_token(live_server: LiveServer, purpose: TokenPurpose, payload: object) -> str:
    """A genuine token signed longer ago than any link may live."""

    class BackdatedSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - timedelta(days=365).total_seconds())

    key = live_server.app.config["SECRET_KEY"]
    return URLSafeTimedSerializer(key, salt=purpose.value, signer=BackdatedSigner).dumps(payload)


# Each case: (reach the page, the h1 it must show). ``reach`` gets page, app, mailbox, live.
Reach = Callable[[Page, object, Mailbox, LiveServer], None]


def signup_page(page, app, mailbox, live):
    page.goto("/")


def signup_with_errors(page, app, mailbox, live):
    page.goto("/")
    page.get_by_label("Email address").fill("not-an-email")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("alert")).to_contain_text("There is a problem")


def check_email(page, app, mailbox, live):
    sign_up(page)


def confirm_page(page, app, mailbox, live):
    open_confirm_link(page, mailbox)


def confirmed_page(page, app, mailbox, live):
    open_confirm_link(page, mailbox)
    page.get_by_role("button", name="Confirm subscription").click()


def manage_page(page, app, mailbox, live):
    subscriber = subscribed_reader(app)
    page.goto(live.signed_url(TokenPurpose.MANAGE, subscriber))


def pause_until(page: Page, day: str, month: str, year: str) -> None:
    dates = page.get_by_role("group", name="Pause all emails until")
    dates.get_by_label("Day").fill(day)
    dates.get_by_label("Month").fill(month)
    dates.get_by_label("Year").fill(year)
    page.get_by_role("button", name="Pause emails").click()


def manage_with_error(page, app, mailbox, live):
    manage_page(page, app, mailbox, live)
    pause_until(page, "31", "1", "2020")
    expect(page.get_by_role("alert")).to_contain_text("The date must be in the future")


def manage_with_date_error(page, app, mailbox, live):
    manage_page(page, app, mailbox, live)
    pause_until(page, "31", "", "2027")
    expect(page.get_by_role("alert")).to_contain_text("The date must include a month")


def manage_paused(page, app, mailbox, live):
    manage_page(page, app, mailbox, live)
    until = date.today() + timedelta(days=30)
    pause_until(page, str(until.day), str(until.month), str(until.year))
    expect(page.get_by_role("status")).to_contain_text(f"paused until {until.day} {until:%B %Y}")


def unsubscribe_all_confirm(page, app, mailbox, live):
    manage_page(page, app, mailbox, live)
    page.get_by_role("button", name="Unsubscribe from all emails").click()


def unsubscribed_from_all(page, app, mailbox, live):
    unsubscribe_all_confirm(page, app, mailbox, live)
    page.get_by_role("button", name="Yes, unsubscribe from all emails").click()


def erase_confirm(page, app, mailbox, live):
    manage_page(page, app, mailbox, live)
    page.get_by_role("button", name="Delete your data").click()


def erased(page, app, mailbox, live):
    erase_confirm(page, app, mailbox, live)
    page.get_by_role("button", name="Yes, delete my data").click()


def email_me_a_link(page, app, mailbox, live):
    page.goto("/manage")


def email_me_a_link_sent(page, app, mailbox, live):
    page.goto("/manage")
    page.get_by_label("Email address").fill("reader@example.com")
    page.get_by_role("button", name="Email me a link").click()


def unsubscribe_page(page, app, mailbox, live):
    subscriber = subscribed_reader(app)
    page.goto(live.signed_url(TokenPurpose.UNSUBSCRIBE, {"s": subscriber, "t": None}))


def unsubscribed_page(page, app, mailbox, live):
    unsubscribe_page(page, app, mailbox, live)
    page.get_by_role("button", name="Unsubscribe").click()


def not_found(page, app, mailbox, live):
    response = page.goto("/no-such-page")
    assert response is not None and response.status == 404


def invalid_link(page, app, mailbox, live):
    response = page.goto("/manage/not-a-real-token")
    assert response is not None and response.status == 400


def expired_link(page, app, mailbox, live):
    subscriber = subscribed_reader(app)
    response = page.goto("/manage/" + expired_token(live, TokenPurpose.MANAGE, subscriber))
    assert response is not None and response.status == 410


PAGES: list[tuple[Reach, str]] = [
    (signup_page, "Get email alerts"),
    (signup_with_errors, "Get email alerts"),
    (check_email, "Check your email"),
    (confirm_page, "Confirm your subscription"),
    (confirmed_page, "Subscription confirmed"),
    (manage_page, "Manage your email alerts"),
    (manage_with_error, "Manage your email alerts"),
    (manage_with_date_error, "Manage your email alerts"),
    (manage_paused, "Manage your email alerts"),
    (unsubscribe_all_confirm, "Are you sure you want to unsubscribe from all emails?"),
    (unsubscribed_from_all, "You've unsubscribed"),
    (erase_confirm, "Are you sure you want to delete your data?"),
    (erased, "Your data has been deleted"),
    (email_me_a_link, "Manage your email alerts"),
    (email_me_a_link_sent, "Check your email"),
    (unsubscribe_page, "Unsubscribe"),
    (unsubscribed_page, "You've unsubscribed"),
    (not_found, "Page not found"),
    (invalid_link, "This link does not work"),
    (expired_link, "This link has expired"),
]


@pytest.mark.parametrize(("reach", "title"), PAGES, ids=[reach.__name__ for reach, _ in PAGES])
def test_page_has_no_wcag_21_aa_violations(
    page: Page, app, mailbox: Mailbox, live_server: LiveServer, reach: Reach, title: str
):
    seed_topics(app)
    reach(page, app, mailbox, live_server)
    expect(heading(page)).to_have_text(title)
    assert_accessible(page)


NARROW = [signup_page, signup_with_errors, manage_page, manage_with_error, manage_with_date_error]


@pytest.mark.parametrize("reach", NARROW, ids=[reach.__name__ for reach in NARROW])
def test_page_reflows_at_320_css_pixels(
    page: Page, app, mailbox: Mailbox, live_server: LiveServer, reach: Reach
):
    """WCAG 1.4.10 Reflow: usable at 320px wide with no horizontal scrolling."""
    page.set_viewport_size({"width": 320, "height": 640})
    seed_topics(app)
    reach(page, app, mailbox, live_server)
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    too_wide = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter(el => el.getBoundingClientRect().right > 320.5)
            .map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
                 + (el.className ? '.' + String(el.className).split(' ').join('.') : ''))"""
    )
    assert scroll_width <= 320, f"page is {scroll_width}px wide; too wide: {too_wide}"
    assert_accessible(page)


def test_the_check_fails_on_a_page_with_a_violation(page: Page, app):
    """Guard against a vacuous pass: axe must notice a field that has lost its label."""
    seed_topics(app)
    page.goto("/")
    page.locator("label[for=email]").evaluate("label => label.remove()")
    violations = run_axe(page, AXE_OPTIONS, record=False)
    assert "label" in {violation["id"] for violation in violations}, describe(violations)
