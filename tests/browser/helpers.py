"""What a person does in the browser, written once for the browser tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import Flask
from playwright.sync_api import Locator, Page, expect

from alertsvc import tokens
from tests.factories import OPERATOR_PASSWORD


@dataclass(frozen=True)
class LiveServer:
    """The app served over real HTTP for the browser, and its origin."""

    app: Flask
    url: str

    def signed_url(self, purpose: tokens.TokenPurpose, payload: Any) -> str:
        """A link as an email would carry it: signed by the live app, on its origin."""
        with self.app.app_context():
            return tokens.signed_url(purpose, payload)


def open_email(page: Page, subject: str | re.Pattern[str]) -> None:
    """Open ``/dev/mail`` and click the email with this subject, as a developer would."""
    page.goto("/dev/mail")
    page.get_by_role("link", name=subject).click()
    page.get_by_role("heading", name="Text part").wait_for()


def email_link(page: Page, path_prefix: str) -> Locator:
    """The first link in the open email's text whose path starts with ``path_prefix``."""
    pattern = re.compile(rf"^https?://[^/]+{re.escape(path_prefix)}")
    return page.locator("pre.mail-text a").filter(has_text=pattern).first


def heading(page: Page) -> Locator:
    return page.get_by_role("heading", level=1)


def sign_in_as(page: Page, email: str, password: str = OPERATOR_PASSWORD) -> None:
    """Sign in at /admin/login as an existing operator, and land on the dashboard."""
    page.goto("/admin/login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(heading(page)).to_have_text("Dashboard")
