"""The Register For Alerts box in a publisher's page on another origin.

A second HTTP server stands in for the publisher's site: its article page frames
``/embed/register``. It is reached as ``http://localhost:<port>`` (an origin listed in
``EMBED_ORIGINS``) and as ``http://127.0.0.1:<port>`` (the same page, an origin not
listed). alertsvc runs on a live server of its own, made with that setting.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, expect
from werkzeug.serving import make_server

from alertsvc import PROJECT_ROOT
from alertsvc.extensions import db
from tests.browser.conftest import TIMEOUT_MS
from tests.browser.helpers import LiveServer, heading
from tests.browser.test_accessibility import assert_accessible
from tests.factories import create_article, seed_topics
from tests.mail import Mailbox, text_part

pytestmark = pytest.mark.browser


def _publisher_page(embed_url: str) -> bytes:
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Councils share data - Publisher</title></head>
<body>
<main>
<h1>Councils share data</h1>
<p>The article's text.</p>
<iframe src="{embed_url}/embed/register?topic=data" title="Register For Alerts"
  width="100%" height="300"></iframe>
</main>
</body>
</html>""".encode()


README = PROJECT_ROOT / "README.md"
# Where the README's snippets say alertsvc is, and the article its iframe snippet names.
README_HOST = "https://ALERTS-HOST"
README_ARTICLE = "https://www.example.org/news/councils-share-data"


def readme_snippets() -> tuple[str, str]:
    """The README's two snippets for the Register For Alerts box, exactly as a publisher
    copies them: the iframe, then the plain form."""
    text = README.read_text(encoding="utf-8")
    start = text.index("## The Register For Alerts box")
    section = text[start : text.index("\n## ", start + 1)]
    iframe, plain = re.findall(r"```html\n(.*?)```", section, re.S)
    assert "<iframe" in iframe and "<form" in plain
    return iframe, plain


def _article_page(snippet: str, embed_url: str) -> bytes:
    """A publisher's article page with ``snippet`` pasted in, pointing at alertsvc."""
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Councils share data - Publisher</title></head>
<body>
<main>
<h1>Councils share data</h1>
<p>The article's text.</p>
{snippet.replace(README_HOST, embed_url)}
</main>
</body>
</html>""".encode()


@pytest.fixture(scope="module")
def publisher_port() -> Iterator[tuple[int, dict[str, bytes]]]:
    """The publisher's site: an article page that frames the box (every path), or carries
    the README's plain form (paths under ``/plain/``) or its iframe (under ``/readme/``),
    written once alertsvc's address is known."""
    holder: dict[str, bytes] = {"page": b"", "plain": b"", "readme": b""}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            folder = self.path.split("/")[1]
            body = holder[folder] if folder in ("plain", "readme") else holder["page"]
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="publisher", daemon=True)
    thread.start()
    try:
        yield port, holder
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture(scope="module")
def embed_server(make_app: Callable[..., Flask], publisher_port) -> Iterator[LiveServer]:
    """alertsvc on its own live server, which lets the publisher's localhost origin frame
    the box (and no other)."""
    port, holder = publisher_port
    listener = socket.create_server(("127.0.0.1", 0))
    own_port = listener.getsockname()[1]
    origin = f"http://127.0.0.1:{own_port}"
    app = make_app(BASE_URL=origin, EMBED_ORIGINS=f"http://localhost:{port}")
    server = make_server("127.0.0.1", own_port, app, threaded=True, fd=listener.fileno())
    listener.close()
    holder["page"] = _publisher_page(origin)
    iframe, plain = readme_snippets()
    holder["plain"] = _article_page(plain, origin)
    holder["readme"] = _article_page(iframe, origin)
    thread = threading.Thread(target=server.serve_forever, name="embed-server", daemon=True)
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
def allowed_publisher(publisher_port) -> str:
    return f"http://localhost:{publisher_port[0]}"


@pytest.fixture
def other_publisher(publisher_port) -> str:
    return f"http://127.0.0.1:{publisher_port[0]}"


@pytest.fixture
def embed_context(
    browser: Browser, embed_server: LiveServer, allowed_publisher: str, other_publisher: str
) -> Iterator[BrowserContext]:
    """A browser that may reach alertsvc and the publisher's two origins, nothing else."""
    context = browser.new_context(
        base_url=embed_server.url,
        locale="en-GB",
        timezone_id="Europe/London",
        viewport={"width": 1024, "height": 768},
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    origins = (embed_server.url, allowed_publisher, other_publisher)
    reachable = tuple(f"{origin}/" for origin in origins)
    context.route(lambda url: not url.startswith(reachable), lambda route: route.abort())
    yield context
    context.close()


def console_errors(page: Page) -> list[str]:
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    return errors


@pytest.fixture
def embed_mailbox(embed_server: LiveServer, mail_dir: Path) -> Mailbox:
    return Mailbox(embed_server.app, mail_dir)


def test_a_reader_signs_up_from_the_box_in_a_publishers_page(
    embed_context, embed_server, embed_mailbox, allowed_publisher
):
    seed_topics(embed_server.app)
    page = embed_context.new_page()
    errors = console_errors(page)
    with page.expect_response(lambda r: "/embed/register" in r.url) as framed:
        page.goto(f"{allowed_publisher}/news/councils-share-data")
    policy = framed.value.headers["content-security-policy"]
    assert f"frame-ancestors {allowed_publisher};" in policy
    assert "x-frame-options" not in framed.value.headers

    box = page.frame_locator("iframe[title='Register For Alerts']")
    expect(box.get_by_role("heading", name="Register For Alerts")).to_be_visible()
    box.get_by_label("Email address").fill("reader@example.com")
    with embed_context.expect_page() as opened:
        box.get_by_role("button", name="Sign up").click()
    signup = opened.value
    signup.wait_for_load_state()
    signup_errors = console_errors(signup)

    assert signup.url.startswith(f"{embed_server.url}/?")
    expect(heading(signup)).to_have_text("Get email alerts")
    expect(signup.get_by_label("Email address")).to_have_value("reader@example.com")
    expect(signup.get_by_label("Data", exact=True)).to_be_checked()
    expect(signup.get_by_label("Cyber security", exact=True)).not_to_be_checked()
    expect(signup.get_by_text("There is a problem")).to_have_count(0)
    assert_accessible(signup)

    signup.get_by_role("button", name="Subscribe").click()
    expect(heading(signup)).to_have_text("Check your email")
    [message] = embed_mailbox.deliver()
    assert message["To"] == "reader@example.com"
    assert message["Subject"] == "Confirm your email alerts: Data"
    assert f"{embed_server.url}/confirm/" in text_part(message)
    assert errors == [] and signup_errors == []


def test_a_page_from_an_origin_not_listed_cannot_frame_the_box(
    embed_context, embed_server, other_publisher, allowed_publisher
):
    seed_topics(embed_server.app)
    page = embed_context.new_page()
    errors = console_errors(page)
    with page.expect_response(lambda r: "/embed/register" in r.url) as framed:
        page.goto(f"{other_publisher}/news/councils-share-data")
    policy = framed.value.headers["content-security-policy"]
    assert f"frame-ancestors {allowed_publisher};" in policy
    assert other_publisher not in policy

    [frame] = page.main_frame.child_frames
    frame.wait_for_load_state()
    assert frame.locator("form").count() == 0
    assert frame.get_by_text("Register For Alerts").count() == 0
    assert any("frame-ancestors" in error for error in errors), errors


def test_the_readmes_iframe_snippet_ticks_the_articles_topics(
    embed_context, embed_server, embed_mailbox, allowed_publisher
):
    """The README's iframe, pasted as it is: the box names only the article's address."""
    topics = seed_topics(embed_server.app)
    create_article(
        embed_server.app,
        "Councils share data",
        [topics["data"], topics["local-digital"]],
        datetime(2026, 11, 30, tzinfo=UTC),
        url=README_ARTICLE,
    )
    page = embed_context.new_page()
    page.goto(f"{allowed_publisher}/readme/news/councils-share-data")
    box = page.frame_locator("iframe[title='Register For Alerts']")
    expect(box.get_by_text("Alerts about Data and Local digital.")).to_be_visible()
    box.get_by_label("Email address").fill("reader@example.com")
    with embed_context.expect_page() as opened:
        box.get_by_role("button", name="Sign up").click()
    signup = opened.value
    signup.wait_for_load_state()
    expect(signup.get_by_label("Email address")).to_have_value("reader@example.com")
    expect(signup.get_by_label("Data", exact=True)).to_be_checked()
    expect(signup.get_by_label("Local digital", exact=True)).to_be_checked()
    expect(signup.get_by_label("Cyber security", exact=True)).not_to_be_checked()

    signup.get_by_role("button", name="Subscribe").click()
    expect(heading(signup)).to_have_text("Check your email")
    [message] = embed_mailbox.deliver()
    assert message["Subject"] == "Confirm your email alerts: Data, Local digital"


def test_the_plain_form_on_a_page_that_frames_nothing_leads_to_the_prefilled_signup(
    embed_context, embed_server, allowed_publisher
):
    seed_topics(embed_server.app)
    page = embed_context.new_page()
    page.goto(f"{allowed_publisher}/plain/news/councils-share-data")
    page.get_by_label("Email address").fill("reader@example.com")
    with embed_context.expect_page() as opened:
        page.get_by_role("button", name="Sign up").click()
    signup = opened.value
    signup.wait_for_load_state()
    expect(heading(signup)).to_have_text("Get email alerts")
    expect(signup.get_by_label("Email address")).to_have_value("reader@example.com")
    expect(signup.get_by_label("Data", exact=True)).to_be_checked()
    expect(signup.get_by_label("Local digital", exact=True)).to_be_checked()
    expect(signup.get_by_label("Cyber security", exact=True)).not_to_be_checked()


def test_the_box_is_accessible(embed_context, embed_server):
    seed_topics(embed_server.app)
    page = embed_context.new_page()
    page.goto("/embed/register?topic=data&topic=cyber-security")
    expect(page.get_by_role("button", name="Sign up")).to_be_visible()
    assert_accessible(page)
    page.set_viewport_size({"width": 320, "height": 600})
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
