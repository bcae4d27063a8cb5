"""Token scopes end to end: made with the CLI, listed, enforced, and what a token changes
recorded in the audit log under its name."""

from __future__ import annotations

from alertsvc.api.tokens import ApiToken
from alertsvc.extensions import db
from alertsvc.models import Article, AuditEntry
from tests.factories import count, create_token, rows, seed_topics


def cli(app, *args: str):
    return app.test_cli_runner().invoke(args=["api-tokens", *args])


def test_create_with_scopes_list_and_revoke(app, client):
    seed_topics(app)
    made = cli(app, "create", "dashboard", "--scope", "read", "--scope", "runs:write")
    assert made.exit_code == 0
    token = made.output.strip()
    assert cli(app, "create", "cms").exit_code == 0
    assert rows(app, db.select(ApiToken.name, ApiToken.scopes).order_by(ApiToken.name)) == [
        ("cms", "articles:write"),
        ("dashboard", "runs:write read"),
    ]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/topics", headers=headers).status_code == 200
    refused = client.post("/api/v1/articles", json={}, headers=headers)
    assert refused.status_code == 403
    assert refused.json == {
        "error": "Forbidden",
        "detail": "This token does not have the scope 'articles:write' this request needs.",
    }
    assert refused.headers["WWW-Authenticate"] == (
        'Bearer realm="alertsvc", error="insufficient_scope", scope="articles:write"'
    )

    assert cli(app, "revoke", "cms").exit_code == 0
    listed = cli(app, "list")
    assert listed.exit_code == 0
    dashboard, cms = listed.output.splitlines()
    assert dashboard.startswith("dashboard\truns:write read\tcreated ")
    assert "last used 20" in dashboard and "REVOKED" not in dashboard
    assert cms.startswith("cms\tarticles:write") and "last used never" in cms
    assert "REVOKED" in cms
    assert token not in listed.output
    assert rows(app, db.select(AuditEntry.action).order_by(AuditEntry.id)) == [
        "token.create",
        "token.create",
        "token.revoke",
    ]


def test_an_unknown_scope_is_refused(app):
    result = cli(app, "create", "x", "--scope", "admin")
    assert result.exit_code == 2 and "'admin' is not one of" in result.output
    assert count(app, ApiToken) == 0


def test_no_tokens_yet(app):
    assert "No API tokens yet" in cli(app, "list").output


def test_articles_sent_are_one_audit_entry_per_request_with_counts(app, client):
    seed_topics(app)
    headers = {"Authorization": f"Bearer {create_token(app, 'cms')}"}
    batch = [
        {"title": f"A {n}", "url": f"https://news.example.org/{n}", "topics": ["data"]}
        for n in range(3)
    ]
    assert client.post("/api/v1/articles", json=batch, headers=headers).status_code == 201
    assert client.post("/api/v1/articles", json=batch[:1], headers=headers).status_code == 200
    entries = rows(app, db.select(AuditEntry.actor, AuditEntry.action, AuditEntry.details))
    assert entries == [
        ("token:cms", "article.ingest", {"created": 3, "updated": 0, "unchanged": 0, "skipped": 0}),
        ("token:cms", "article.ingest", {"created": 0, "updated": 0, "unchanged": 1, "skipped": 0}),
    ]
    refused = client.post(
        "/api/v1/articles", json=[*batch, {"title": "x", "url": "nope"}], headers=headers
    )
    assert refused.status_code == 422
    assert count(app, AuditEntry) == 2 and count(app, Article) == 3


def test_the_document_says_each_operation_needs_a_token_and_which_scope(client):
    document = client.get("/api/v1/openapi.json").json
    operations = [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    ]
    assert len(operations) >= 12
    for method, path, operation in operations:
        assert operation["security"] == [{"bearerAuth": []}], (method, path)
        assert {"401", "403", "429"} <= set(operation["responses"]), (method, path)
        assert operation["description"].startswith("Scope `"), (method, path)


def test_a_token_has_one_allowance_across_every_route(make_app):
    limited = make_app(API_RATE_LIMIT="3 per minute")
    headers = {"Authorization": f"Bearer {create_token(limited, 'dashboard', ['read'])}"}
    client = limited.test_client()
    paths = ["/api/v1/topics", "/api/v1/feeds", "/api/v1/stats", "/api/v1/runs"]
    assert [client.get(path, headers=headers).status_code for path in paths] == [
        200,
        200,
        200,
        429,
    ]


def test_a_revoked_tokens_name_stays_taken_and_the_refusal_says_why(app):
    assert cli(app, "create", "cms").exit_code == 0
    again = cli(app, "create", "cms")
    assert again.exit_code == 1
    assert "Error: a token named 'cms' already exists: choose another name" in again.output

    assert cli(app, "revoke", "cms").exit_code == 0
    after = cli(app, "create", "cms")
    assert after.exit_code == 1
    assert "'cms' already exists (revoked, kept so the audit log reads true)" in after.output
    assert count(app, ApiToken) == 1
