"""Every HTML email passes axe-core at WCAG 2.1 AA and reads at 320 px and at 200% zoom.

Each email is made as the service makes it: the code that queues it (signup, confirmation,
a manage link request, the immediate-alert job, the digest planner), then the real worker in
burst mode writing ``.eml`` files to the file transport. The test reads the HTML part back
from the file (the final HTML, after css-inline) and shows it in headless Chromium with
``page.set_content``, as a mail client would show it: no server behind it, no network.

Content is chosen to be hard to lay out: several topics, long and hostile titles, one
word longer than a phone is wide, summaries with lists and quotes.

For review, a full-page PNG of each email at 320 px and at 800 px wide is saved under the
pytest output folder: ``<basetemp>/emails/<email>-<width>px.png`` (by default
``/tmp/pytest-of-<user>/pytest-<n>/emails/``; pytest keeps only its last three output
folders, so pass ``--basetemp=DIR`` to keep them).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import EmailMessage
from itertools import pairwise
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Page
from sqlalchemy import delete, select

from alertsvc.database import transaction
from alertsvc.extensions import db
from alertsvc.models import Frequency, OutboxEmail, SignupRequest, Topic
from alertsvc.subscriptions import services
from tests.browser.axe_report import run_axe
from tests.browser.helpers import LiveServer
from tests.browser.test_accessibility import AXE_OPTIONS, describe
from tests.digests.helpers import alerts, at, digest, start_subscriptions_at
from tests.factories import create_article, create_subscriber, seed_topics
from tests.mail import Mailbox, html_part

pytestmark = pytest.mark.browser

READER = "reader@example.com"
SCHEDULE = services.Schedule(timezone="Europe/London", daily_hour=7, weekly_day=0, weekly_hour=7)
# A title as feeds send them: long, with markup that must show as text, and one "word"
# (a URL pasted as a title) wider than a 320 px screen.
HOSTILE_TITLE = (
    'Councils & "cloud first": <script>alert(1)</script> what the 2026 spending review means '
    "for local digital services, shared platforms and the people who run them"
)
UNBROKEN = "https://news.example/reports/" + "a_very_long_path_segment_" * 4 + "final.pdf"
SUMMARY = (
    "<p>The report finds <strong>three</strong> problems:</p>"
    "<ul><li>legacy contracts</li><li>skills shortages</li><li>unclear ownership</li></ul>"
    "<blockquote><p>We cannot keep paying twice for the same service.</p></blockquote>"
)
# Screenshot widths, and the widths reflow is checked at: 320 px, and a 800 px window
# zoomed to 200% (which lays the page out in 400 CSS pixels).
WIDTHS = (320, 800)
REFLOW_WIDTHS = (320, 400)
SIGNUP_SLUGS = ("data", "cyber-security", "local-digital")


def _signup_topics(slugs: tuple[str, ...]) -> list[Topic]:
    return list(db.session.scalars(select(Topic).where(Topic.slug.in_(slugs)).order_by(Topic.name)))


def queue_confirm(app: Flask, make_app: Callable[..., Flask]) -> None:
    seed_topics(app)
    with app.app_context(), transaction():
        services.sign_up(READER, _signup_topics(SIGNUP_SLUGS), Frequency.DAILY, SCHEDULE)


def queue_subscribed(app: Flask, make_app: Callable[..., Flask]) -> None:
    queue_confirm(app, make_app)
    with app.app_context(), transaction():
        services.confirm_signup(db.session.scalars(select(SignupRequest)).one())
    # Only the welcome email is wanted: drop the confirmation before the worker sends it.
    _drop_queued(app, keep="subscribed")


def queue_already_subscribed(app: Flask, make_app: Callable[..., Flask]) -> None:
    topics = seed_topics(app)
    create_subscriber(app, READER, {topics[slug]: "weekly" for slug in SIGNUP_SLUGS})
    with app.app_context(), transaction():
        services.sign_up(READER, _signup_topics(SIGNUP_SLUGS), Frequency.WEEKLY, SCHEDULE)


def queue_manage_link(app: Flask, make_app: Callable[..., Flask]) -> None:
    create_subscriber(app, READER)
    with app.app_context(), transaction():
        services.send_manage_link(READER)


def queue_alert(app: Flask, make_app: Callable[..., Flask]) -> None:
    """An immediate alert that is the last of the day (the daily cap note shows)."""
    topics = seed_topics(app)
    reader = create_subscriber(
        app,
        READER,
        {topics["data"]: "immediately", topics["cyber-security"]: "immediately"},
    )
    start_subscriptions_at(app, reader, at("2026-11-25T00:00"))
    create_article(
        app,
        HOSTILE_TITLE,
        [topics["data"], topics["cyber-security"]],
        at("2026-11-25T09:00"),
        summary=SUMMARY + f"<p>Full text: {UNBROKEN}</p>",
        alerted=False,
    )
    assert alerts(make_app(ALERTS_DAILY_CAP=1), at("2026-11-25T09:01")).emails == 1


def queue_daily_digest(app: Flask, make_app: Callable[..., Flask]) -> None:
    """A daily digest with several topics and alerts held back by the daily cap."""
    capped = make_app(ALERTS_DAILY_CAP=1)
    topics = seed_topics(app)
    reader = create_subscriber(
        app,
        READER,
        {
            topics["data"]: "daily",
            topics["cyber-security"]: "daily",
            topics["local-digital"]: "immediately",
        },
    )
    start_subscriptions_at(app, reader, at("2026-11-24T07:00"))
    create_article(
        app, HOSTILE_TITLE, [topics["data"], topics["cyber-security"]], at("2026-11-24T12:00")
    )
    create_article(
        app,
        "Open data strategy published",
        [topics["data"]],
        at("2026-11-24T15:00"),
        summary=SUMMARY,
    )
    create_article(app, UNBROKEN, [topics["cyber-security"]], at("2026-11-24T16:00"))
    for hour, title in ((9, "Local digital fund opens"), (10, "Fund deadline extended")):
        create_article(
            app, title, [topics["local-digital"]], at(f"2026-11-24T{hour:02d}:00"), alerted=False
        )
        alerts(capped, at(f"2026-11-24T{hour:02d}:01"))
    _drop_queued(app, keep="digest")  # the one alert the cap let through
    assert digest(capped, "daily", at("2026-11-25T07:00")).emails == 1


def queue_weekly_digest(app: Flask, make_app: Callable[..., Flask]) -> None:
    topics = seed_topics(app)
    reader = create_subscriber(
        app, READER, {topics["data"]: "weekly", topics["local-digital"]: "weekly"}
    )
    start_subscriptions_at(app, reader, at("2026-11-22T12:00"))
    create_article(app, HOSTILE_TITLE, [topics["data"]], at("2026-11-24T12:00"), summary=SUMMARY)
    create_article(
        app,
        "Article with no summary",
        [topics["data"], topics["local-digital"]],
        at("2026-11-25T12:00"),
    )
    assert digest(app, "weekly", at("2026-11-30T07:00")).emails == 1  # a Monday


def _drop_queued(app: Flask, *, keep: str) -> None:
    with app.app_context(), transaction():
        db.session.execute(delete(OutboxEmail).where(OutboxEmail.template != keep))


EMAILS: dict[str, Callable[[Flask, Callable[..., Flask]], None]] = {
    "confirm": queue_confirm,
    "subscribed": queue_subscribed,
    "already_subscribed": queue_already_subscribed,
    "manage_link": queue_manage_link,
    "alert": queue_alert,
    "digest_daily": queue_daily_digest,
    "digest_weekly": queue_weekly_digest,
}


@pytest.fixture(scope="session")
def email_shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.getbasetemp() / "emails"
    folder.mkdir(exist_ok=True)
    return folder


def sent_email(live_server: LiveServer, mailbox: Mailbox, make_app, kind: str) -> EmailMessage:
    EMAILS[kind](live_server.app, make_app)
    [message] = mailbox.deliver()
    return message


# What axe's WCAG rules do not check: link text that says nothing read out of context
# (screen readers list a message's links on their own).
VAGUE_LINK_TEXT = {"click here", "here", "read more", "more", "link", "this link", "click"}

STRUCTURE = """() => ({
    lang: document.documentElement.lang,
    title: document.title,
    headings: [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')].map(
        (h) => [Number(h.tagName[1]), h.textContent.trim()]),
    links: [...document.querySelectorAll('a[href]')].map(
        (a) => (a.getAttribute('aria-label') || a.textContent).trim().replace(/\\s+/g, ' ')),
})"""

OVERFLOW = """() => {
    const edge = document.documentElement.clientWidth;
    const wider = [...document.body.querySelectorAll('*')].filter(
        (element) => element.getBoundingClientRect().right > edge + 0.5);
    const widest = Math.max(document.documentElement.scrollWidth, document.body.scrollWidth);
    return {
        overflow: Math.max(0, widest - edge),
        elements: wider.map((element) => element.outerHTML.slice(0, 120)),
    };
}"""


def horizontal_overflow(page: Page) -> tuple[int, list[str]]:
    """How many CSS pixels the email sticks out past the window, and what sticks out."""
    found = page.evaluate(OVERFLOW)
    return found["overflow"], found["elements"]


def assert_structure(page: Page, site_name: str) -> None:
    """``lang``, a title naming the email, one h1 and no skipped heading level, and link
    text that makes sense alone."""
    found = page.evaluate(STRUCTURE)
    assert found["lang"] == "en"
    levels = [level for level, _ in found["headings"]]
    assert levels.count(1) == 1 and levels[0] == 1, found["headings"]
    assert all(b - a <= 1 for a, b in pairwise(levels)), found["headings"]
    h1 = found["headings"][0][1]
    assert found["title"] == f"{h1} - {site_name}"
    assert found["links"], "an email with no link"
    vague = [text for text in found["links"] if text.lower().strip(".") in VAGUE_LINK_TEXT]
    assert not vague and all(found["links"]), found["links"]


@pytest.mark.parametrize("kind", list(EMAILS))
def test_email_is_accessible_and_reflows(
    kind: str, page: Page, live_server: LiveServer, mailbox: Mailbox, make_app, email_shots: Path
) -> None:
    message = sent_email(live_server, mailbox, make_app, kind)
    html = html_part(message)
    # Layout tables, even those only Outlook sees (inside conditional comments), are
    # marked as layout so screen readers do not announce rows and columns.
    tables = re.findall(r"<table\b[^>]*>", html)
    assert all('role="presentation"' in table for table in tables), tables

    for width in REFLOW_WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        page.set_content(html)
        overflow, elements = horizontal_overflow(page)
        assert overflow == 0, f"{kind} is {overflow} px too wide at {width} CSS px: {elements}"
    assert_structure(page, live_server.app.config["SITE_NAME"])
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        page.set_content(html)
        # Not recorded: the accessibility statement's report lists web pages by address.
        violations = run_axe(page, AXE_OPTIONS, record=False)
        assert not violations, f"{kind} at {width} px\n{describe(violations)}"
        page.screenshot(path=email_shots / f"{kind}-{width}px.png", full_page=True)


def test_the_reflow_check_sees_a_fixed_width_email(page: Page) -> None:
    """The check above can fail: a 600 px table in a 320 px window sticks out."""
    page.set_viewport_size({"width": 320, "height": 800})
    page.set_content('<html lang="en"><body><table width="600"><tr><td>x</td></tr></table>')
    overflow, elements = horizontal_overflow(page)
    assert overflow > 0 and elements[0].startswith("<table")


def test_the_axe_check_sees_an_email_it_should_refuse(page: Page) -> None:
    """axe runs on content set straight into the page: grey on grey text is caught."""
    page.set_content(
        '<html lang="en"><head><title>Bad - Alerts</title></head><body>'
        '<p style="color: #aaaaaa; background: #ffffff">Faint text</p></body></html>'
    )
    violations = run_axe(page, AXE_OPTIONS, record=False)
    assert [violation["id"] for violation in violations] == ["color-contrast"]
