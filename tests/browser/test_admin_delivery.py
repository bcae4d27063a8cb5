"""The Delivery pages in a browser: the pages reached by sending a form pass axe-core at
laptop and phone widths without sideways scrolling (the pages reached by a link are checked
with every other admin page in ``test_admin_accessibility.py``), and an operator can pause
and resume sending without a script."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from alertsvc.database import transaction
from alertsvc.delivery.suppressions import SuppressionSource, suppress
from alertsvc.models import SuppressionReason, utcnow
from tests.browser.helpers import LiveServer, heading, sign_in_as
from tests.browser.test_accessibility import assert_accessible
from tests.factories import create_operator, create_token

pytestmark = pytest.mark.browser

EMAIL = "ops@publisher.example"


def some_data(live_server: LiveServer) -> None:
    app = live_server.app
    with app.app_context(), transaction():
        suppress(
            "a.very.long.address.that.might.not.fit@subdomain.example.org",
            SuppressionReason.BOUNCE,
            SuppressionSource.SES,
            "smtp; 550 5.1.1 The email account that you tried to reach does not exist",
            utcnow(),
        )
    create_token(app, "newsroom CMS")


def paused(page: Page) -> None:
    page.goto("/admin/delivery")
    page.get_by_label("Reason").fill("Checking a bounce spike")
    page.get_by_role("button", name="Pause sending").click()
    expect(page.get_by_text("Reason: Checking a bounce spike")).to_be_visible()


def pause_with_error(page: Page) -> None:
    page.goto("/admin/delivery")
    page.get_by_role("button", name="Pause sending").click()
    expect(page.get_by_role("heading", name="There is a problem")).to_be_visible()


def token_created(page: Page) -> None:
    page.goto("/admin/delivery/tokens")
    page.get_by_label("Name").fill("analytics")
    page.get_by_label("read", exact=True).check()
    page.get_by_role("button", name="Create token").click()
    expect(heading(page)).to_have_text("Token analytics created")


PAGES: list[tuple[Callable[[Page], None], str]] = [
    (paused, "Delivery"),
    (pause_with_error, "Delivery"),
    (token_created, "Token analytics created"),
]


@pytest.mark.parametrize("width", [1280, 375])
@pytest.mark.parametrize(("reach", "title"), PAGES, ids=[reach.__name__ for reach, _ in PAGES])
def test_delivery_pages_are_accessible(
    page: Page, live_server: LiveServer, reach, title: str, width: int
) -> None:
    create_operator(live_server.app, EMAIL, "admin")
    some_data(live_server)
    page.set_viewport_size({"width": width, "height": 800})
    sign_in_as(page, EMAIL)
    reach(page)
    expect(heading(page)).to_contain_text(title)
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    too_wide = page.evaluate(
        """width => [...document.querySelectorAll('body *')]
            .filter(el => el.getBoundingClientRect().right > width + 0.5
                          && !(el.parentElement && el.parentElement.closest('.table-scroll')))
            .map(el => el.tagName.toLowerCase() + (el.className ? '.' + el.className : ''))""",
        width,
    )
    assert scroll_width <= width, f"the page is {scroll_width}px wide at {width}px: {too_wide}"
    assert_accessible(page)


def test_an_operator_pauses_and_resumes_sending(page: Page, live_server: LiveServer) -> None:
    create_operator(live_server.app, EMAIL, "admin")
    sign_in_as(page, EMAIL)
    page.get_by_role("link", name="Delivery").click()
    page.get_by_label("All sending").check()
    page.get_by_label("Reason").fill("SES review")
    page.get_by_role("button", name="Pause sending").click()
    expect(page.get_by_role("status")).to_have_text("Paused all sending.")
    page.get_by_role("button", name="Resume all sending").click()
    expect(page.get_by_role("status")).to_have_text("Resumed all sending.")
    expect(page.get_by_text("Nothing is paused.")).to_be_visible()
