"""/privacy, /accessibility, /contact: figures from the settings, publisher overrides, and the
footer that leads to them on every public page."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pytest
from flask import Flask

from alertsvc.config import ConfigurationError
from alertsvc.legal.services import ACCESSIBILITY_RESULTS, accessibility_results
from alertsvc.tokens import TokenPurpose, make_token
from tests.factories import create_subscriber, seed_topics

# Not pages a reader browses: the operators' and machines' endpoints.
NOT_PUBLIC = ("/admin", "/api", "/dev", "/ses", "/metrics", "/healthz", "/static", "/embed")


def text(response) -> str:
    """The page's words, without markup, one space between each."""
    body = response.get_data(as_text=True)
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    words = re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", body))).strip()
    return re.sub(r" ([.,;:])", r"\1", words)


def test_privacy_notice_quotes_the_retention_settings(app_with) -> None:
    app = app_with(
        SIGNUP_REQUEST_RETENTION_DAYS=3,
        RETENTION_OUTBOX_DAYS=45,
        RETENTION_RUNS_DAYS=60,
        RETENTION_UNSUBSCRIBED_DAYS=1,
        LOG_RETENTION_DAYS=14,
        CONFIRM_TOKEN_MAX_AGE=12 * 3600,
        MANAGE_TOKEN_MAX_AGE=30 * 24 * 3600,
    )
    words = text(app.test_client().get("/privacy"))
    assert "A signup you have not confirmed 3 days, then it is deleted" in words
    assert "The confirmation link works for 12 hours" in words
    assert "your address is deleted after 1 day" in words
    assert "Emails we sent you 45 days after we sent them" in words
    assert "Which articles went into your digests 60 days" in words
    assert "Server logs 14 days" in words
    assert "works for 30 days" in words


def test_privacy_notice_with_the_default_settings(client) -> None:
    response = client.get("/privacy")
    assert response.status_code == 200
    words = text(response)
    assert "A signup you have not confirmed 30 days" in words
    assert "your address is deleted after 28 days" in words
    assert "Emails we sent you 90 days" in words
    assert "Server logs As long as our hosting keeps its logs" in words
    # How to get or delete the data: the manage pages' own words, and a link to ask for one.
    assert "Download your data" in words and "Delete your data" in words
    assert 'href="/manage"' in response.get_data(as_text=True)
    assert "Our lawful basis is your consent" in words
    assert "not handed to an outside email service" in words
    assert "Amazon" not in words


def test_privacy_notice_names_amazon_ses_when_it_sends(app_with) -> None:
    app = app_with(MAIL_TRANSPORT="ses", SES_REGION="eu-west-2")
    words = text(app.test_client().get("/privacy"))
    assert "Amazon Web Services (Amazon Simple Email Service, in its eu-west-2 region)" in words


def test_controller_and_contact_come_from_the_settings(app_with) -> None:
    app = app_with(
        PUBLISHER_NAME="Example Publishing Ltd",
        PRIVACY_CONTROLLER="Example Publishing Ltd (ICO registration Z1234567)",
        CONTACT_EMAIL="privacy@example.org",
        CONTACT_PHONE="020 7946 0000",
        CONTACT_ADDRESS="1 High Street, London, SW1A 1AA",
    )
    client = app.test_client()
    privacy = text(client.get("/privacy"))
    assert "Example Publishing Ltd (ICO registration Z1234567) is the data controller" in privacy
    assert "privacy@example.org, or by post to 1 High Street, London, SW1A 1AA" in privacy
    contact = text(client.get("/contact"))
    assert "Public Technology alerts is run by Example Publishing Ltd" in contact
    assert "Telephone 020 7946 0000" in contact
    assert "Post 1 High Street, London, SW1A 1AA" in contact
    statement = text(client.get("/accessibility"))
    assert "email privacy@example.org or call 020 7946 0000" in statement


def test_unset_contact_settings_are_derived_from_the_mail_settings(app_with) -> None:
    app = app_with(MAIL_REPLY_TO="Newsroom <newsroom@alerts.test>")
    assert app.config["CONTACT_EMAIL"] == "newsroom@alerts.test"
    assert app.config["PUBLISHER_NAME"] == "Public Technology alerts"
    assert app.config["PRIVACY_CONTROLLER"] == "Public Technology alerts"
    words = text(app.test_client().get("/contact"))
    assert "Contact us at newsroom@alerts.test" in words
    assert app_with().config["CONTACT_EMAIL"] == "alerts@alerts.test"  # MAIL_FROM's address


def test_production_warns_about_each_derived_publisher_setting(
    make_app, caplog: pytest.LogCaptureFixture
) -> None:
    production = {"ENV": "production", "BASE_URL": "https://alerts.example.org"}
    make_app(**production, CONTACT_EMAIL="privacy@example.org")
    warned = " ".join(record.getMessage() for record in caplog.records)
    assert "ALERTSVC_PUBLISHER_NAME is not set" in warned
    assert "ALERTSVC_PRIVACY_CONTROLLER is not set" in warned
    assert "ALERTSVC_CONTACT_EMAIL" not in warned


@pytest.mark.parametrize(
    ("setting", "value"),
    [("ACCESSIBILITY_COMPLIANCE", "mostly"), ("LOG_RETENTION_DAYS", 0)],
)
def test_wording_settings_that_cannot_be_worded_stop_start_up(make_app, setting, value) -> None:
    with pytest.raises(ConfigurationError, match=f"ALERTSVC_{setting}"):
        make_app(**{setting: value})


def test_accessibility_statement_renders_the_committed_results(client) -> None:
    results = accessibility_results()
    assert results is not None
    words = text(client.get("/accessibility"))
    checked = results.checked_on.strftime("%-d %B %Y").strip()
    assert f"last tested on {checked}" in words
    assert f"using axe-core {results.tool_version}" in words
    assert "its rules for WCAG 2.0 level A, WCAG 2.0 level AA, WCAG 2.1 level A" in words
    assert "/privacy" in words and "/manage/<token>" in words
    assert "found no accessibility problems" in words
    for heading in [
        "Using this website",
        "How accessible this website is",
        "Feedback and contact information",
        "Enforcement procedure",
        "Technical information about this website's accessibility",
        "Compliance status",
        "Non-accessible content",
        "What we're doing to improve accessibility",
        "Preparation of this accessibility statement",
    ]:
        assert heading in words
    assert "partially compliant with the Web Content Accessibility Guidelines version 2.2" in words
    assert "Equality and Human Rights Commission (EHRC)" in words
    assert "Equality Commission for Northern Ireland (ECNI)" in words


def test_statement_says_full_compliance_only_when_set(app_with) -> None:
    words = text(app_with(ACCESSIBILITY_COMPLIANCE="full").test_client().get("/accessibility"))
    assert "fully compliant with the Web Content Accessibility Guidelines version 2.2" in words
    assert "Non-accessible content" not in words


def test_committed_accessibility_results_list_public_pages_with_no_violations(app) -> None:
    """``make accessibility-report`` writes the file; a violation fails the browser tests."""
    data = json.loads(ACCESSIBILITY_RESULTS.read_text())
    assert data["tool"] == "axe-core" and data["tool_version"]
    pages = {page["path"]: page for page in data["pages"]}
    for path in ["/", "/manage", "/manage/<token>", "/privacy", "/accessibility", "/contact"]:
        assert path in pages, f"{path} missing from {ACCESSIBILITY_RESULTS}"
    assert any(path.startswith("/admin") for path in pages)
    assert all(page["checks"] >= 1 for page in pages.values())
    failing = {path: page["violations"] for path, page in pages.items() if page["violations"]}
    assert not failing


def test_a_publishers_override_replaces_the_wording(app_with, tmp_path: Path) -> None:
    override = tmp_path / "web" / "legal" / "privacy_body.html"
    override.parent.mkdir(parents=True)
    override.write_text(
        "<p>Example Publishing keeps your address for "
        "{{ retention.unsubscribed_days|duration }} after you leave.</p>"
    )
    app = app_with(TEMPLATE_OVERRIDES_DIR=str(tmp_path), RETENTION_UNSUBSCRIBED_DAYS=10)
    client = app.test_client()
    privacy = text(client.get("/privacy"))
    assert "Example Publishing keeps your address for 10 days after you leave." in privacy
    assert "What we store" not in privacy
    assert "Privacy notice" in privacy  # the page's frame and heading are still the service's
    assert "Contact us at" in text(client.get("/contact"))  # other pages keep theirs


def test_default_override_folder_is_in_the_instance_folder(app_with) -> None:
    app = app_with(TEMPLATE_OVERRIDES_DIR=None)  # the tests' own app uses an empty folder
    assert app.config["TEMPLATE_OVERRIDES_DIR"] == str(Path(app.instance_path) / "templates")


def public_pages(app: Flask) -> list[tuple[str, str]]:
    """(rule, path) of every public GET page in the URL map, its arguments filled with
    working values."""
    topics = seed_topics(app)
    subscriber = create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
    with app.test_request_context():
        values = {
            TokenPurpose.MANAGE: make_token(TokenPurpose.MANAGE, subscriber),
            TokenPurpose.UNSUBSCRIBE: make_token(
                TokenPurpose.UNSUBSCRIBE, {"s": subscriber, "t": None}
            ),
        }
    paths = []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.rule.startswith(NOT_PUBLIC):
            continue
        path = rule.rule
        if "<token>" in path:
            purpose = (
                TokenPurpose.UNSUBSCRIBE if path.startswith("/unsubscribe") else TokenPurpose.MANAGE
            )
            # A confirm link needs a signup request: its link-problem page is checked instead.
            path = path.replace("<token>", values[purpose] if "confirm" not in path else "x")
        path = path.replace("<slug>", "data")
        assert "<" not in path, f"fill {rule.rule}'s arguments in public_pages"
        paths.append((rule.rule, path))
    return paths


def test_every_public_page_has_the_footer_links(app, client) -> None:
    pages = public_pages(app)
    assert {"/", "/manage", "/privacy", "/accessibility", "/contact"} <= {p for _, p in pages}
    for _, path in pages:
        response = client.get(path)
        if response.mimetype != "text/html" or 300 <= response.status_code < 400:
            continue
        body = response.get_data(as_text=True)
        assert '<footer class="site-footer">' in body, f"{path} ({response.status_code})"
        footer = body[body.index('<footer class="site-footer">') :]
        for href in ["/manage", "/privacy", "/accessibility", "/contact"]:
            assert f'href="{href}"' in footer, f"{path} ({response.status_code}) lacks {href}"
        assert '<a href="#main-content" class="skip-link">Skip to main content</a>' in body
        assert re.search(r'<header class="site-header">.*?<a href="/">', body, re.S), path


def test_committed_accessibility_results_cover_every_public_page(app, client) -> None:
    """A new public page makes this fail until ``make accessibility-report`` has checked it
    (its browser test must check it with ``run_axe``), so the statement never leaves it out."""
    checked = {page["path"] for page in json.loads(ACCESSIBILITY_RESULTS.read_text())["pages"]}
    missing = []
    for rule, path in public_pages(app):
        response = client.get(path)
        is_page = response.mimetype == "text/html" and not 300 <= response.status_code < 400
        if is_page and rule not in checked:  # a redirect's own body is never shown
            missing.append(rule)
    assert not missing, f"run make accessibility-report: {missing} not in the results"


@pytest.mark.parametrize(
    ("days", "words"),
    [
        (1, "1 day"),
        (30, "30 days"),
        (1.5, "36 hours"),
        (1 / 24, "1 hour"),
        (1200 / 86400, "20 minutes"),
    ],
)
def test_periods_are_said_exactly_never_rounded(days, words) -> None:
    """20 minutes read "0 hours" and 36 hours "2 days"."""
    from alertsvc.legal.services import duration

    assert duration(days) == words


def test_an_override_that_cannot_be_parsed_stops_start_up(make_app, tmp_path: Path) -> None:
    """A broken privacy notice was found only when a reader opened it (a 500)."""
    from alertsvc.config import ConfigurationError

    override = tmp_path / "web" / "legal" / "privacy_body.html"
    override.parent.mkdir(parents=True)
    override.write_text("<p>{% if %}</p>")
    with pytest.raises(ConfigurationError, match=r"web/legal/privacy_body.html, line 1"):
        make_app(TEMPLATE_OVERRIDES_DIR=str(tmp_path))
    override.write_bytes(b"caf\xe9")
    with pytest.raises(ConfigurationError, match="is not UTF-8 text"):
        make_app(TEMPLATE_OVERRIDES_DIR=str(tmp_path))
