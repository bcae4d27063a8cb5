"""The privacy notice, accessibility statement and contact page pass axe at both widths, and
the footer sits at the bottom of the window on a short page (public and admin frames)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.axe_report import run_axe
from tests.browser.helpers import LiveServer, heading
from tests.browser.test_accessibility import AXE_OPTIONS, describe
from tests.browser.test_admin_accessibility import new_context

pytestmark = pytest.mark.browser

WIDTHS = (1280, 375)
PAGES = {
    "/privacy": "Privacy notice",
    "/accessibility": "Accessibility statement for Public Technology alerts",
    "/contact": "Contact",
}


def problems_on(page: Page, what: str) -> list[str]:
    found = []
    violations = run_axe(page, AXE_OPTIONS)
    if violations:
        found.append(f"{what}: {describe(violations)}")
    scroll_width, window_width = page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth]"
    )
    if scroll_width > window_width:
        found.append(f"{what}: {scroll_width}px wide in a {window_width}px window")
    return found


def test_legal_pages_are_accessible_at_both_widths(
    browser: Browser, live_server: LiveServer
) -> None:
    problems: list[str] = []
    for width in WIDTHS:
        with new_context(browser, live_server, width) as page:
            for path, title in PAGES.items():
                response = page.goto(path)
                assert response is not None and response.status == 200, path
                expect(heading(page)).to_have_text(title)
                problems += problems_on(page, f"{path} at {width}")
    assert not problems, "\n".join(problems)


def test_footer_links_lead_to_the_pages(page: Page, live_server: LiveServer) -> None:
    page.goto("/")
    footer = page.get_by_role("contentinfo")
    for name, title in [
        ("Privacy", "Privacy notice"),
        ("Accessibility statement", "Accessibility statement for Public Technology alerts"),
        ("Contact", "Contact"),
        ("Manage your email alerts", "Manage your email alerts"),
    ]:
        footer.get_by_role("link", name=name, exact=True).click()
        expect(heading(page)).to_have_text(title)
    page.get_by_role("banner").get_by_role("link", name="Public Technology alerts").click()
    expect(heading(page)).to_have_text("Get email alerts")


def footer_bottom(page: Page) -> tuple[float, float, float]:
    """(footer's bottom edge, window height, height of the whole page) in CSS pixels."""
    return page.evaluate(
        """() => [document.querySelector('footer').getBoundingClientRect().bottom,
                  window.innerHeight, document.documentElement.scrollHeight]"""
    )


@pytest.mark.parametrize("path", ["/no-such-page", "/admin/login"])
@pytest.mark.parametrize("width", WIDTHS)
def test_footer_sits_at_the_bottom_of_the_window_on_a_short_page(
    browser: Browser, live_server: LiveServer, width: int, path: str
) -> None:
    with new_context(browser, live_server, width) as page:
        page.goto(path)
        expect(heading(page)).to_be_visible()
        bottom, window, document = footer_bottom(page)
        assert document == window, f"the page is {document}px tall in a {window}px window"
        assert bottom == window, f"footer ends at {bottom}px in a {window}px window"


def test_footer_follows_the_content_on_a_long_page(browser: Browser, live_server: LiveServer):
    with new_context(browser, live_server, 375) as page:
        page.goto("/privacy")
        bottom, window, document = footer_bottom(page)
        assert document > window
        assert abs(bottom - document) < 1, (bottom, document)


def test_skip_link_moves_to_the_main_content(page: Page) -> None:
    page.goto("/privacy")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    skip.press("Enter")
    assert page.url.endswith("#main-content")
    expect(page.locator("main#main-content")).to_be_attached()
