"""Every route under ``/admin`` and ``/api/v1``, read from the app's URL map (never listed by
hand, so pages and routes added later are checked too), refuses whoever may not use it:

- anyone not signed in: an admin page redirects a GET to the sign-in page and refuses
  any other method with 403; the API answers 401;
- a signed-in viewer, for every method that could change something (403);
- an API token without the scope the route declares (403); a route that declares no scope
  fails here (and is refused to every token by the API itself).

And every admin change needs the CSRF token of the operator's own session (400).

The only open routes are the sign-in page (to sign in) and the OpenAPI document (it
describes the API and holds no data).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.routing import (
    AnyConverter,
    BaseConverter,
    FloatConverter,
    IntegerConverter,
    Rule,
    UUIDConverter,
)

from alertsvc.admin.blueprint import ADMIN_READS
from alertsvc.api.blueprint import SCOPE_ATTRIBUTE
from alertsvc.api.tokens import SCOPES
from alertsvc.models import AuditEntry
from tests.admin.helpers import csrf_token, sign_in
from tests.factories import (
    create_operator,
    create_subscriber,
    create_token,
    rows,
    seed_topics,
)

SAFE = {"GET", "HEAD", "OPTIONS"}
OPEN_ADMIN = {"admin.sign_in"}
# A viewer may sign out (and signing in is open to all).
VIEWER_MAY_POST = {"admin.sign_in", "admin.sign_out"}
OPEN_API = {"/api/v1/openapi.json"}
# Today's routes, at least: the checks cannot pass by seeing nothing.
MIN_ADMIN_RULES = 3
MIN_API_RULES = 12


def rules(app: Flask, prefix: str) -> list[Rule]:
    return sorted(
        (rule for rule in app.url_map.iter_rules() if rule.rule.startswith(prefix)),
        key=lambda rule: (rule.rule, rule.endpoint),
    )


def value_for(converter: BaseConverter) -> object:
    """A value the converter matches, so the request reaches the rule (and its refusal)."""
    if isinstance(converter, IntegerConverter | FloatConverter):
        return 1
    if isinstance(converter, UUIDConverter):
        return uuid.UUID(int=1)
    if isinstance(converter, AnyConverter):
        return converter.items[0]
    return "x"


def path(rule: Rule) -> str:
    values = {name: value_for(converter) for name, converter in rule._converters.items()}
    return rule.build(values)[1]


def requests(rule: Rule) -> Iterator[tuple[str, str]]:
    for method in sorted(rule.methods or ()):
        yield method, path(rule)


def send(client: FlaskClient, method: str, url: str, **options):
    return client.open(url, method=method, **options)


# -- /admin ----------------------------------------------------------------------------------


def test_every_admin_route_refuses_anyone_not_signed_in(app):
    found = rules(app, "/admin")
    assert len(found) >= MIN_ADMIN_RULES
    client = app.test_client()
    token = csrf_token(client, "/admin/login")
    checked = 0
    for rule in found:
        if rule.endpoint in OPEN_ADMIN:
            continue
        for method, url in requests(rule):
            # A valid CSRF token, so the refusal is for who asks, not for a missing token.
            response = send(client, method, url, data={"csrf_token": token})
            if method in SAFE:
                assert response.status_code == 302, (method, url)
                assert response.headers["Location"].startswith("/admin/login"), (method, url)
            else:
                assert response.status_code == 403, (method, url)
            checked += 1
    assert checked >= MIN_ADMIN_RULES - len(OPEN_ADMIN)


def test_every_admin_change_refuses_a_viewer(app):
    create_operator(app, "viewer@publisher.example", "viewer")
    client = app.test_client()
    assert sign_in(client, "viewer@publisher.example").status_code == 302
    token = csrf_token(client, "/admin/")
    changes = [
        (rule, method, url)
        for rule in rules(app, "/admin")
        if rule.endpoint not in VIEWER_MAY_POST
        for method, url in requests(rule)
        if method not in SAFE
    ]
    for _, method, url in changes:
        response = send(client, method, url, data={"csrf_token": token})
        assert response.status_code == 403, (method, url)
    # Still signed in: the refusals were for the role, not a lost session.
    assert client.get("/admin/").status_code == 200


def test_a_viewer_is_let_through_to_every_admin_page(app):
    """The control for the tests above: the viewer's GETs are not refused (what a page
    then answers, say 404 for item 1 that does not exist, is the page's business)."""
    create_operator(app, "viewer@publisher.example", "viewer")
    client = app.test_client()
    sign_in(client, "viewer@publisher.example")
    for rule in rules(app, "/admin"):
        if "GET" in (rule.methods or ()) and rule.endpoint not in OPEN_ADMIN:
            response = client.get(path(rule))
            if rule.endpoint in ADMIN_READS:
                assert response.status_code == 403, rule.rule
                continue
            assert response.status_code != 403, rule.rule
            assert "/admin/login" not in response.headers.get("Location", ""), rule.rule


def test_every_admin_change_needs_the_csrf_token(app):
    """CSRF on every form: an admin's change without the token, or with one from another
    session, is refused and changes nothing (the sign-in form included)."""
    seed_topics(app)
    create_subscriber(app, "reader@example.com", {})
    create_operator(app, "ops@publisher.example", "admin")
    client = app.test_client()
    assert sign_in(client, "ops@publisher.example").status_code == 302
    forged = csrf_token(app.test_client(), "/admin/login")
    before = rows(app, select(AuditEntry.id))
    changes = [
        (method, url)
        for rule in rules(app, "/admin")
        for method, url in requests(rule)
        if method not in SAFE
    ]
    assert len(changes) >= MIN_ADMIN_RULES
    for method, url in changes:
        for data in ({}, {"csrf_token": forged}):
            response = send(client, method, url, data=data)
            assert response.status_code == 400, (method, url, data)
            assert "this form has expired" in response.get_data(as_text=True), (method, url)
    assert rows(app, select(AuditEntry.id)) == before
    assert client.get("/admin/").status_code == 200, "still signed in"


# -- /api/v1 ---------------------------------------------------------------------------------


def api_rules(app: Flask) -> list[Rule]:
    found = [rule for rule in rules(app, "/api/v1") if rule.rule not in OPEN_API]
    assert len(found) >= MIN_API_RULES
    return found


def declared_scope(app: Flask, rule: Rule) -> str:
    scope = getattr(app.view_functions[rule.endpoint], SCOPE_ATTRIBUTE, None)
    assert scope in SCOPES, f"{rule.rule} ({rule.endpoint}) declares no scope: @requires(...)"
    return scope


def test_every_api_route_declares_a_scope(app):
    for rule in api_rules(app):
        declared_scope(app, rule)


def test_the_open_api_routes_are_only_the_document(app):
    assert [rule.rule for rule in rules(app, "/api/v1") if rule.rule in OPEN_API] == list(OPEN_API)
    assert app.test_client().get("/api/v1/openapi.json").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer alertsvc_made-up"}, {"Authorization": "Basic eDp5"}],
    ids=["no token", "unknown token", "another scheme"],
)
def test_every_api_route_refuses_anyone_without_a_token(app, headers):
    client = app.test_client()
    for rule in api_rules(app):
        for method, url in requests(rule):
            response = send(client, method, url, headers=headers, json={})
            assert response.status_code == 401, (method, url)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            if method != "HEAD":
                assert response.json["error"] == "Unauthorized"


def test_every_api_route_refuses_a_token_without_its_scope(app):
    tokens = {
        scope: create_token(app, f"all but {scope}", [s for s in SCOPES if s != scope])
        for scope in SCOPES
    }
    everything = create_token(app, "everything", SCOPES)
    client = app.test_client()
    checked = 0
    adapter = app.url_map.bind("localhost")
    for rule in api_rules(app):
        for method, url in requests(rule):
            # The rule that answers: two rules on one URL (GET and POST /articles) both
            # take OPTIONS, and the first of them answers it.
            endpoint, _ = adapter.match(url, method=method)
            scope = declared_scope(app, next(r for r in api_rules(app) if r.endpoint == endpoint))
            refused = send(
                client, method, url, headers={"Authorization": f"Bearer {tokens[scope]}"}, json={}
            )
            assert refused.status_code == 403, (method, url, scope)
            assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
            if method != "HEAD":
                assert refused.json["error"] == "Forbidden" and scope in refused.json["detail"]
            allowed = send(
                client, method, url, headers={"Authorization": f"Bearer {everything}"}, json={}
            )
            assert allowed.status_code not in (401, 403), (method, url, scope)
            checked += 1
    assert checked >= MIN_API_RULES
