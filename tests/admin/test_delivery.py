"""The Delivery pages: pauses and reputation, suppressions, API tokens; every change
audited, every refusal a form error that changes nothing, viewers only look."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from alertsvc.addresses import address_hash
from alertsvc.api.tokens import ApiToken, live_token
from alertsvc.audit import Actor, record_audit, set_actor
from alertsvc.database import transaction
from alertsvc.delivery.pauses import pause, pause_actor
from alertsvc.delivery.suppressions import SuppressionSource, suppress
from alertsvc.models import (
    AuditEntry,
    PauseScope,
    SendingPause,
    Suppression,
    SuppressionReason,
    utcnow,
)
from tests.admin.conftest import ADMIN_EMAIL
from tests.admin.helpers import post_form
from tests.factories import count, create_token, rows


def page_text(response) -> str:
    html = response.get_data(as_text=True)
    main = html[html.find("<main") : html.find("</main>")]
    return " ".join(re.sub(r"<[^>]+>", " ", main).split())


def changes(app: Flask) -> list[AuditEntry]:
    """The audit entries of changes (signing in is recorded too)."""
    return rows(
        app,
        select(AuditEntry).where(AuditEntry.action.not_like("operator.%")).order_by(AuditEntry.id),
    )


def audit(app: Flask) -> list[tuple[str, str]]:
    return [(entry.action, entry.target) for entry in changes(app)]


def suppressed(app: Flask, *emails: str) -> None:
    with app.app_context(), transaction():
        for email in emails:
            suppress(
                email, SuppressionReason.BOUNCE, SuppressionSource.SES, "550 no such user", utcnow()
            )


# -- sending and reputation ------------------------------------------------------------------


def test_the_page_shows_sending_and_the_reputation_figures(admin_client: FlaskClient) -> None:
    response = admin_client.get("/admin/delivery")
    assert response.status_code == 200
    text = page_text(response)
    assert "Nothing is paused" in text
    assert "Too few sends for a verdict" in text
    assert "Permanent bounces 0 0.00% 2.50%" in text
    assert "Complaints 0 0.000% 0.050%" in text
    assert 'aria-current="page">Delivery<' in response.get_data(as_text=True)


def test_pause_and_resume_are_audited(app: Flask, admin_client: FlaskClient) -> None:
    response = post_form(
        admin_client,
        "/admin/delivery/pause",
        {"scope": "subscriptions", "reason": "Checking a bounce spike"},
        csrf_from="/admin/delivery",
        follow_redirects=True,
    )
    assert response.status_code == 200
    text = page_text(response)
    assert "Paused subscription emails" in text
    assert "Reason: Checking a bounce spike" in text
    assert f"UTC by operator:{ADMIN_EMAIL}." in text
    [paused] = rows(app, select(SendingPause))
    assert (paused.scope, paused.paused_by, paused.resumed_at) == (
        "subscriptions",
        f"operator:{ADMIN_EMAIL}",
        None,
    )

    response = post_form(
        admin_client,
        "/admin/delivery/resume",
        {"scope": "subscriptions"},
        csrf_from="/admin/delivery",
        follow_redirects=True,
    )
    assert "Resumed subscription emails" in page_text(response)
    assert rows(app, select(SendingPause.resumed_at))[0] is not None
    assert rows(app, select(SendingPause.resumed_by)) == [f"operator:{ADMIN_EMAIL}"]
    assert audit(app) == [
        ("sending.pause", "sending: subscriptions"),
        ("sending.resume", "sending: subscriptions"),
    ]


def test_a_long_operator_name_is_cut_to_fit_with_an_ellipsis(app: Flask) -> None:
    long_name = f"operator:{'a' * 80}@example.org"
    with app.test_request_context():
        set_actor(Actor(long_name))
        with transaction():
            pause(PauseScope.ALL, "Moving domains", pause_actor(), utcnow())
            record_audit("sending.pause", "sending: all")
    [by] = rows(app, select(SendingPause.paused_by))
    assert len(by) == 64 and by == long_name[:63] + "…"
    assert rows(app, select(AuditEntry.actor)) == [long_name]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"scope": "subscriptions", "reason": "  "}, "Enter why sending is paused"),
        ({"scope": "everything", "reason": "x"}, "Not a valid choice"),
        ({"scope": "all", "reason": "x" * 501}, "500 characters or fewer"),
    ],
)
def test_a_bad_pause_is_refused_and_changes_nothing(
    app: Flask, admin_client: FlaskClient, data: dict, message: str
) -> None:
    response = post_form(admin_client, "/admin/delivery/pause", data, csrf_from="/admin/delivery")
    assert response.status_code == 400
    text = page_text(response)
    assert "There is a problem" in text and message in text
    assert count(app, SendingPause) == 0 and not changes(app)


# -- suppressions ----------------------------------------------------------------------------


def test_suppressions_are_listed_newest_first_and_searched_by_prefix(
    app: Flask, admin_client: FlaskClient
) -> None:
    suppressed(app, "alice@example.org", "bob@example.org", "alan_x@example.net")
    text = page_text(admin_client.get("/admin/delivery/suppressions"))
    assert "3 in all" in text
    assert text.index("alan_x@example.net") < text.index("bob@example.org") < text.index("alice@")
    found = page_text(admin_client.get("/admin/delivery/suppressions?q=AL"))
    assert "alice@example.org" in found and "alan_x@example.net" in found
    assert "bob@example.org" not in found
    # A LIKE wildcard in the search is a character, not a pattern.
    found = page_text(admin_client.get("/admin/delivery/suppressions?q=a%25"))
    assert "alice@" not in found and "No suppressed address starts with" in found


def test_a_suppression_with_a_unicode_domain_is_found_by_its_unicode_start(
    app: Flask, admin_client: FlaskClient
) -> None:
    suppressed(app, "jane@xn--exmple-cua.org", "jane@xn--exm-una.org")  # exämple, exmö
    found = page_text(admin_client.get("/admin/delivery/suppressions?q=Jane@Exäm"))
    assert "jane@xn--exmple-cua.org (jane@exämple.org)" in found
    assert "xn--exm-una" not in found


def test_a_whole_address_finds_an_erased_subscribers_hashed_suppression(
    app: Flask, admin_client: FlaskClient
) -> None:
    suppressed(app, address_hash("gone@example.org"), "gone.too@example.org")
    found = page_text(admin_client.get("/admin/delivery/suppressions?q=Gone@Example.org"))
    assert "gone@example.org (erased subscriber; kept as a hash)" in found
    assert "gone.too@example.org" not in found and "sha256:" not in found
    newest = page_text(admin_client.get("/admin/delivery/suppressions"))
    assert "(erased subscriber; kept as a hash)" in newest and "gone@example.org" not in newest
    prefix = page_text(admin_client.get("/admin/delivery/suppressions?q=gone@"))
    assert "kept as a hash" not in prefix.split("Addresses starting with")[1]

    [row_id] = rows(app, select(Suppression.id).where(Suppression.email.startswith("sha256:")))
    path = f"/admin/delivery/suppressions/{row_id}/remove"
    assert "Remove an erased subscriber&#39;s address (kept as a hash)" in page_text(
        admin_client.get(path)
    )
    removed = post_form(
        admin_client, path, {"reason": "Asked to hear again"}, csrf_from=path, follow_redirects=True
    )
    assert "Removed an erased subscriber&#39;s address (kept as a hash)" in page_text(removed)
    assert rows(app, select(Suppression.email)) == ["gone.too@example.org"]


def test_an_operator_suppresses_and_removes_an_address_with_reasons(
    app: Flask, admin_client: FlaskClient
) -> None:
    response = post_form(
        admin_client,
        "/admin/delivery/suppressions",
        {"email": " Reader@Example.org ", "detail": "Asked us by phone to stop"},
        csrf_from="/admin/delivery/suppressions",
        follow_redirects=True,
    )
    assert "Suppressed reader@example.org" in page_text(response)
    [row] = rows(app, select(Suppression))
    assert (row.email, row.reason, row.source, row.detail) == (
        "reader@example.org",
        "operator",
        "operator",
        "Asked us by phone to stop",
    )
    path = f"/admin/delivery/suppressions/{row.id}/remove"
    assert "Remove reader@example.org from the suppression list?" in page_text(
        admin_client.get(path)
    )
    refused = post_form(admin_client, path, {"reason": ""}, csrf_from=path)
    assert refused.status_code == 400
    assert "Enter why mail to this address may go again" in page_text(refused)
    assert count(app, Suppression) == 1

    removed = post_form(
        admin_client, path, {"reason": "Wrong address"}, csrf_from=path, follow_redirects=True
    )
    assert "Removed reader@example.org" in page_text(removed)
    assert count(app, Suppression) == 0
    assert audit(app) == [
        ("suppression.add", f"suppression {row.id}"),
        ("suppression.remove", f"suppression {row.id}"),
    ]
    entries = changes(app)
    assert "example.org" not in str([(e.target, e.details) for e in entries])
    assert entries[1].details == {"was": "operator", "reason": "Wrong address"}


def test_a_bad_address_is_refused(app: Flask, admin_client: FlaskClient) -> None:
    response = post_form(
        admin_client,
        "/admin/delivery/suppressions",
        {"email": "not an address", "detail": "x"},
        csrf_from="/admin/delivery/suppressions",
    )
    assert response.status_code == 400
    assert "Enter an email address" in page_text(response)
    assert count(app, Suppression) == 0 and not changes(app)


# -- API tokens ------------------------------------------------------------------------------


def test_a_token_is_shown_once_and_works(app: Flask, admin_client: FlaskClient) -> None:
    response = post_form(
        admin_client,
        "/admin/delivery/tokens",
        {"name": "Newsroom CMS", "scopes": ["articles:write", "read"]},
        csrf_from="/admin/delivery/tokens",
    )
    assert response.status_code == 200
    token = re.search(r'value="(alertsvc_[^"]+)"', response.get_data(as_text=True)).group(1)
    assert "shown only this once" in page_text(response)
    with app.app_context():
        row = live_token(token)
        assert row is not None and row.scopes == "articles:write read"
    listing = admin_client.get("/admin/delivery/tokens").get_data(as_text=True)
    assert "Newsroom CMS" in listing and token not in listing
    assert audit(app) == [("token.create", "token Newsroom CMS")]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "scopes": ["read"]}, "Enter a name for the token"),
        ({"name": "cms"}, "Choose at least one scope"),
        ({"name": "cms", "scopes": ["admin"]}, "not a valid choice"),
        ({"name": "newsroom", "scopes": ["read"]}, "already exists"),
    ],
)
def test_a_bad_token_request_is_refused(
    app: Flask, admin_client: FlaskClient, data: dict, message: str
) -> None:
    create_token(app, "newsroom")
    response = post_form(
        admin_client, "/admin/delivery/tokens", data, csrf_from="/admin/delivery/tokens"
    )
    assert response.status_code == 400
    assert message in page_text(response)
    assert count(app, ApiToken) == 1 and not changes(app)


def test_revoking_a_token_stops_it(app: Flask, admin_client: FlaskClient) -> None:
    token = create_token(app, "newsroom")
    with app.app_context():
        token_id = live_token(token).id
    response = post_form(
        admin_client,
        f"/admin/delivery/tokens/{token_id}/revoke",
        csrf_from="/admin/delivery/tokens",
        follow_redirects=True,
    )
    assert "Revoked the token newsroom" in page_text(response)
    assert "Revoked " in page_text(response)
    with app.app_context():
        assert live_token(token) is None
    assert audit(app) == [("token.revoke", "token newsroom")]


# -- viewers ---------------------------------------------------------------------------------


def test_viewers_see_but_cannot_change(app: Flask, viewer_client: FlaskClient) -> None:
    suppressed(app, "reader@example.org")
    create_token(app, "newsroom")
    for path in ("/admin/delivery", "/admin/delivery/suppressions", "/admin/delivery/tokens"):
        response = viewer_client.get(path)
        assert response.status_code == 200
        assert 'method="post" action="/admin/delivery' not in response.get_data(as_text=True)
    assert "reader@example.org" in page_text(viewer_client.get("/admin/delivery/suppressions"))
    for path, data in [
        ("/admin/delivery/pause", {"scope": "all", "reason": "x"}),
        ("/admin/delivery/suppressions", {"email": "x@example.org", "detail": "x"}),
        ("/admin/delivery/tokens", {"name": "x", "scopes": ["read"]}),
    ]:
        assert post_form(viewer_client, path, data).status_code == 403
    assert count(app, SendingPause) == 0 and count(app, ApiToken) == 1
    assert count(app, Suppression) == 1 and not changes(app)


def test_anonymous_visitors_are_sent_to_sign_in(client: FlaskClient) -> None:
    response = client.get("/admin/delivery/tokens")
    assert response.status_code == 302
    assert "/admin/login" in response.headers["Location"]
