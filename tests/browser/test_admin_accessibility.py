"""Every admin page passes axe-core (WCAG 2.1 AA) at 1280 and 375 px wide, and never makes
the window scroll sideways.

The pages are not a hand-made list: every GET rule under ``/admin`` in the live app's URL
map is visited, its URL parameters filled from seeded rows by ``PARAMETERS``. A new page
whose parameters that mapping cannot fill fails the test by name, so it cannot be skipped
by forgetting it. The sign-in page (anonymous, with and without an error), a page seen by
a viewer and forms showing their error summary are checked as well.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from flask import url_for
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select, update

from alertsvc.audit import record_audit
from alertsvc.database import transaction
from alertsvc.delivery.pauses import pause
from alertsvc.delivery.suppressions import SuppressionSource, suppress
from alertsvc.digests.schedule import floor_hour
from alertsvc.extensions import db
from alertsvc.models import (
    DigestRun,
    Feed,
    OutboxEmail,
    PauseScope,
    Suppression,
    SuppressionReason,
    Topic,
    utcnow,
)
from tests.browser.axe_report import run_axe
from tests.browser.conftest import TIMEOUT_MS
from tests.browser.helpers import LiveServer, heading, sign_in_as
from tests.browser.test_accessibility import AXE_OPTIONS, describe
from tests.digests.helpers import digest, start_subscriptions_at
from tests.factories import (
    create_article,
    create_feed,
    create_operator,
    create_subscriber,
    create_token,
    seed_topics,
)

pytestmark = pytest.mark.browser

ADMIN = "ops@publisher.example"
VIEWER = "viewer@publisher.example"
READER = "reader@example.com"
WIDTHS = (1280, 375)
# Fewer pages than this means the enumeration went wrong (or the URL map shrank): the test
# must not pass by visiting nothing. Today: 21 endpoints, 25 visits (4 in two variants).
MIN_PAGES = 25

# Endpoints under /admin that answer GET but are not HTML pages a person reads.
NOT_PAGES = {
    # A JSON download ("attachment"): no document to check, and each GET writes an audit entry.
    "admin.subscribers_export",
    # The raw HTML part of a digest email, shown in the sandboxed frame of the preview page.
    # It is an email, not an admin page: ``test_digest_preview_frame_is_accessible`` checks it
    # with axe as the full document it is, at 1280 only (its width is the email's own layout,
    # shown inside the preview page's frame, whose page is checked at both widths here).
    "admin.subscribers_preview_html",
    # Signed in, it redirects to the dashboard; it is checked signed out below.
    "admin.sign_in",
}

Seeded = dict[str, int]
# endpoint -> the URL values of each visit (path parameters, and query strings for variants
# worth seeing). Endpoints without parameters are visited once with none unless listed.
PARAMETERS: dict[str, Callable[[Seeded], list[dict[str, Any]]]] = {
    "admin.topics_edit": lambda s: [
        {"topic_id": s["keyword_topic"], "preview": 1},
        {"topic_id": s["retired_topic"]},
    ],
    "admin.feeds_edit": lambda s: [{"feed_id": s["broken_feed"]}],
    "admin.articles": lambda s: [{}, {"q": "data"}],
    "admin.articles_view": lambda s: [{"article_id": s["article"]}],
    "admin.runs_show": lambda s: [{"run_id": s["run"]}],
    "admin.subscribers": lambda s: [{}, {"email": "reader@"}],
    "admin.subscribers_show": lambda s: [{"subscriber_id": s["reader"]}],
    "admin.subscribers_preview": lambda s: [
        {"subscriber_id": s["reader"], "frequency": "daily"},
        {"subscriber_id": s["reader"], "frequency": "weekly"},
    ],
    "admin.subscribers_erase_confirm": lambda s: [{"subscriber_id": s["reader"]}],
    "admin.delivery_suppression_remove": lambda s: [{"suppression_id": s["suppression"]}],
}


def seed(app) -> Seeded:
    """A service in use: topics (one matched by keywords, one retired), a healthy and a
    broken feed, articles, a reader on daily and weekly digests, a planned daily run whose
    emails are in several states, a suppression, an API token, audit entries and a pause."""
    topics = seed_topics(app)
    now = utcnow()
    end = floor_hour(now)
    with app.app_context():
        db.session.execute(
            update(Topic).where(Topic.id == topics["data"]).values(query='data OR "open data"')
        )
        db.session.execute(
            update(Topic).where(Topic.id == topics["local-digital"]).values(retired_at=now)
        )
        db.session.commit()
    create_feed(
        app,
        "https://93.184.215.14/ok.xml",
        ["data"],
        title="Healthy feed",
        last_success_at=now,
        newest_item_at=now,
    )
    broken = create_feed(
        app,
        "https://93.184.215.14/broken.xml",
        ["cyber-security"],
        title="",
        parked_at=now,
        last_error="HTTP 503 Service Unavailable from a very long address " * 3,
        last_error_at=now,
        newest_item_at=now - timedelta(days=40),
    )
    with app.app_context():
        db.session.execute(update(Feed).where(Feed.id == broken).values(consecutive_failures=6))
        db.session.commit()
    article = create_article(
        app,
        "Open data strategy published for every council",
        [topics["data"], topics["cyber-security"]],
        end - timedelta(hours=3),
        summary="<p>The strategy <strong>covers</strong> data sharing.</p>",
    )
    create_article(app, "Cyber guidance refreshed", [topics["cyber-security"]], now)

    # The reader is not due in the run below, so their next digests still hold the articles.
    reader = create_subscriber(
        app,
        READER,
        {topics["data"]: "daily", topics["cyber-security"]: "weekly"},
        timezone="UTC",
        daily_hour=(end.hour + 12) % 24,
    )
    start_subscriptions_at(app, reader, end - timedelta(days=3))
    due = []
    for number in range(4):
        due.append(
            create_subscriber(
                app,
                f"due{number}@example.com",
                {topics["data"]: "daily"},
                timezone="UTC",
                daily_hour=end.hour,
            )
        )
        start_subscriptions_at(app, due[-1], end - timedelta(days=1))
    run = digest(app, "daily", end).run_id
    with app.app_context():
        emails = list(
            db.session.scalars(
                select(OutboxEmail.id).where(OutboxEmail.run_id == run).order_by(OutboxEmail.id)
            )
        )
        assert len(emails) == 4, emails
        for email, values in zip(
            emails,
            [
                {"status": "sent", "sent_at": now},
                {"status": "failed", "attempts": 5, "last_error": "SES said no " * 10},
                {"status": "suppressed"},
                {"status": "queued"},
            ],
            strict=True,
        ):
            db.session.execute(update(OutboxEmail).where(OutboxEmail.id == email).values(values))
        db.session.commit()

    with app.app_context(), transaction():
        suppress(
            "a.very.long.address.that.might.not.fit@subdomain.example.org",
            SuppressionReason.BOUNCE,
            SuppressionSource.SES,
            "smtp; 550 5.1.1 The email account that you tried to reach does not exist",
            now,
        )
        pause(PauseScope.SUBSCRIPTIONS, "Checking a bounce spike", "cli:ops", now)
        record_audit("topic.retire", "topic local-digital")
        record_audit("sending.pause", "subscription emails", {"reason": "Checking a bounce spike"})
        record_audit("run.trigger", f"run {run}", {"frequency": "daily", "emails": 4})
    create_token(app, "newsroom CMS", ("articles:write", "read"))
    create_operator(app, ADMIN, "admin")
    create_operator(app, VIEWER, "viewer")
    with app.app_context():
        suppression = db.session.scalars(select(Suppression.id)).one()
        assert db.session.get(DigestRun, run) is not None
    return {
        "keyword_topic": topics["data"],
        "retired_topic": topics["local-digital"],
        "broken_feed": broken,
        "article": article,
        "reader": reader,
        "run": run,
        "suppression": suppression,
    }


def admin_pages(live_server: LiveServer, seeded: Seeded) -> list[tuple[str, str]]:
    """(endpoint, path) of every admin GET page, from the URL map; fails on a rule whose
    parameters ``PARAMETERS`` cannot fill."""
    app = live_server.app
    rules = [
        rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/admin") and "GET" in (rule.methods or ())
    ]
    assert not set(PARAMETERS) - {rule.endpoint for rule in rules}, "stale PARAMETERS entries"
    pages = []
    with app.test_request_context():
        for rule in sorted(rules, key=lambda r: r.rule):
            if rule.endpoint in NOT_PAGES:
                continue
            fill = PARAMETERS.get(rule.endpoint)
            if fill is None:
                assert not rule.arguments, (
                    f"{rule.endpoint} ({rule.rule}) needs {sorted(rule.arguments)}: add it to "
                    "PARAMETERS (or to NOT_PAGES, saying why, if it is not an HTML page)"
                )
                visits: list[dict[str, Any]] = [{}]
            else:
                visits = fill(seeded)
            for values in visits:
                missing = set(rule.arguments) - set(values)
                assert not missing, f"PARAMETERS[{rule.endpoint!r}] leaves out {sorted(missing)}"
                pages.append((rule.endpoint, url_for(rule.endpoint, **values)))
    return pages


@contextmanager
def new_context(
    browser: Browser, live_server: LiveServer, width: int, *, bypass_csp: bool = False
) -> Iterator[Page]:
    """A tab in a fresh context (no cookies) at ``width`` x 800, reaching the live server only."""
    context: BrowserContext = browser.new_context(
        base_url=live_server.url,
        bypass_csp=bypass_csp,
        locale="en-GB",
        timezone_id="Europe/London",
        viewport={"width": width, "height": 800},
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    origin = live_server.url + "/"
    context.route(lambda url: not url.startswith(origin), lambda route: route.abort())
    try:
        yield context.new_page()
    finally:
        context.close()


def problems_on(page: Page, what: str) -> list[str]:
    """axe violations and sideways scrolling of the page as shown, each as a message.

    Closed ``<details>`` are opened first, so what they hide is checked too.
    """
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
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


def visit(page: Page, path: str) -> None:
    response = page.goto(path)
    assert response is not None and response.status == 200, (
        f"{path}: {response and response.status}"
    )
    expect(heading(page)).to_be_visible()


def show_form_errors(page: Page) -> list[tuple[str, Callable[[], None]]]:
    """Forms sent with bad input, each showing its error summary (a 400 page)."""

    def topic() -> None:
        page.goto("/admin/topics/new")
        page.get_by_role("button", name="Add topic").click()

    def feed() -> None:
        page.goto("/admin/feeds/new")
        page.get_by_label("Feed address (URL)").fill("not a web address")
        page.get_by_role("button", name="Add feed").click()

    def run_now() -> None:
        page.goto("/admin/runs/new")
        page.get_by_label("Window end (UTC, optional)").fill("tomorrow at noon")
        page.get_by_role("button", name="Preview the run").click()

    def suppression() -> None:
        page.goto("/admin/delivery/suppressions")
        page.get_by_label("Email address").fill("not an address")
        page.get_by_role("button", name="Suppress", exact=True).click()

    return [
        ("topic form", topic),
        ("feed form", feed),
        ("run now", run_now),
        ("suppress", suppression),
    ]


def test_every_admin_page_is_accessible_at_both_widths(
    browser: Browser, live_server: LiveServer
) -> None:
    seeded = seed(live_server.app)
    pages = admin_pages(live_server, seeded)
    assert len(pages) >= MIN_PAGES, pages
    problems: list[str] = []
    checked = 0
    for width in WIDTHS:
        with new_context(browser, live_server, width) as page:
            # Signed out: the sign-in page, then with a refused sign-in.
            visit(page, "/admin/login")
            problems += problems_on(page, f"sign in at {width}")
            page.get_by_label("Email address").fill(ADMIN)
            page.get_by_label("Password").fill("not the password")
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("alert")).to_contain_text("There is a problem")
            problems += problems_on(page, f"refused sign in at {width}")

            sign_in_as(page, ADMIN)
            for endpoint, path in pages:
                visit(page, path)
                problems += problems_on(page, f"{endpoint} {path} at {width}")
                checked += 1
            for name, send in show_form_errors(page):
                send()
                expect(page.get_by_role("alert")).to_contain_text("There is a problem")
                problems += problems_on(page, f"{name} with an error at {width}")
                checked += 1

        with new_context(browser, live_server, width) as page:
            sign_in_as(page, VIEWER)
            visit(page, f"/admin/topics/{seeded['keyword_topic']}")
            expect(page.locator("form:not([action$='/logout'])")).to_have_count(0)
            problems += problems_on(page, f"topic as a viewer at {width}")
    assert checked == len(WIDTHS) * (len(pages) + len(show_form_errors(page))), checked
    assert not problems, "\n".join(problems)


def test_digest_preview_frame_is_accessible(browser: Browser, live_server: LiveServer) -> None:
    """The email shown in the preview's frame: a full HTML document, checked on its own."""
    seeded = seed(live_server.app)
    problems: list[str] = []
    # The frame source's policy is ``sandbox`` without scripts, which would stop axe (a script)
    # from running at all: this context lets it in, as a browser extension would be.
    with new_context(browser, live_server, 1280, bypass_csp=True) as page:
        sign_in_as(page, ADMIN)
        for frequency in ("daily", "weekly"):
            path = f"/admin/subscribers/{seeded['reader']}/preview/{frequency}/email.html"
            response = page.goto(path)
            assert response is not None and response.status == 200, path
            expect(page.get_by_text("Open data strategy")).not_to_have_count(0)
            violations = run_axe(page, AXE_OPTIONS)
            if violations:
                problems.append(f"{path}: {describe(violations)}")
    assert not problems, "\n".join(problems)
