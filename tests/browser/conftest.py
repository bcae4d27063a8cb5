"""Browser tests: the real app on a live server, driven by Debian's headless Chromium.

The live server is the app from ``make_app`` on the suite's test database (SQLite or
PostgreSQL, one per xdist worker), served by werkzeug in a background thread. Its
``BASE_URL`` is its own origin, so every link in an email points back at it, and the
``mailbox`` fixture here sends mail with that app for the same reason: manage and
unsubscribe links are signed at send time, with the sending app's ``BASE_URL``.

Playwright drives ``/usr/bin/chromium``; it never downloads a browser of its own. One browser
per session, a fresh context (cookies, storage) per test. Each context may reach the live
server only: any other request is aborted, so a page that tries to load something from
elsewhere fails loudly instead of quietly depending on the network.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright
from werkzeug.serving import make_server

from alertsvc.extensions import db
from tests.browser import axe_report
from tests.browser.helpers import LiveServer
from tests.mail import Mailbox

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Long enough for a slow CI machine, short enough that a missing element fails quickly.
TIMEOUT_MS = 5_000


@pytest.fixture(scope="session")
def live_server(make_app: Callable[..., Flask]) -> Iterator[LiveServer]:
    # Take the port first, and keep it: werkzeug serves on this very socket, so no other
    # process can grab the port between choosing it and listening on it.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    origin = f"http://127.0.0.1:{port}"
    app = make_app(BASE_URL=origin)
    axe_report.use_app(app)
    server = make_server("127.0.0.1", port, app, threaded=True, fd=listener.fileno())
    listener.close()  # the server holds its own duplicate of the descriptor
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(app=app, url=origin)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def mailbox(live_server: LiveServer, mail_dir: Path) -> Mailbox:
    """The real worker, sending with the live app so emailed links lead to the live server."""
    return Mailbox(live_server.app, mail_dir)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def context(browser: Browser, live_server: LiveServer) -> Iterator[BrowserContext]:
    context = browser.new_context(
        base_url=live_server.url,
        locale="en-GB",
        timezone_id="Europe/London",
        viewport={"width": 1024, "height": 768},
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    origin = live_server.url + "/"
    context.route(lambda url: not url.startswith(origin), lambda route: route.abort())
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A tab that fails the test on a script error or a console error (CSP violations are).

    "Failed to load resource" is left out: Chromium logs it for every 4xx page, and the
    tests show error pages on purpose.
    """
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(f"console error on {page.url}: {message.text}")

    page.on("console", on_console)
    yield page
    assert not problems, "\n".join(problems)
