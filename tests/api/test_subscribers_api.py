"""POST /subscribers/export and /subscribers/erase: the address in the body, audited by id."""

from __future__ import annotations

import pytest

from alertsvc.delivery.outbox import queue_email
from alertsvc.extensions import db
from alertsvc.models import AuditEntry, SignupRequest, Subscriber
from tests.delivery.helpers import suppress
from tests.factories import (
    create_subscriber,
    create_token,
    rows,
    seed_topics,
    stored_state,
    subscription_history,
)

EXPORT = "/api/v1/subscribers/export"
ERASE = "/api/v1/subscribers/erase"


@pytest.fixture
def admin(app) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(app, 'dpo', ['subscribers:admin'])}"}


@pytest.fixture
def reader(app) -> int:
    topics = seed_topics(app)
    return create_subscriber(
        app, "reader@example.com", {topics["data"]: "daily", topics["cyber-security"]: "weekly"}
    )


def audit(app) -> list[tuple[str, str, str]]:
    return rows(app, db.select(AuditEntry.actor, AuditEntry.action, AuditEntry.target))


def test_export(app, client, admin, reader):
    response = client.post(EXPORT, json={"email": " Reader@Example.com "}, headers=admin)
    assert response.status_code == 200
    assert response.json["email"] == "reader@example.com"
    assert sorted(s["topic"] for s in response.json["subscriptions"]) == [
        "cyber-security",
        "data",
    ]
    assert audit(app) == [("token:dpo", "subscriber.export", f"subscriber {reader}")]


def test_erase(app, client, admin, reader):
    response = client.post(ERASE, json={"email": "reader@example.com"}, headers=admin)
    assert response.status_code == 200
    assert response.json == {"erased": True, "subscriber_id": reader}
    [email] = rows(app, db.select(Subscriber.email))
    assert "reader" not in email
    assert {state for _, _, state in subscription_history(app, reader)} == {"erased"}
    assert audit(app) == [("token:dpo", "subscriber.erase", f"subscriber {reader}")]
    again = client.post(ERASE, json={"email": "reader@example.com"}, headers=admin)
    assert again.status_code == 404
    # The blanked address is no address (.invalid): nothing finds the erased subscriber.
    assert client.post(EXPORT, json={"email": email}, headers=admin).status_code in (404, 422)


@pytest.mark.parametrize("path", [EXPORT, ERASE])
def test_no_such_subscriber_is_a_json_404_and_changes_nothing(app, client, admin, reader, path):
    before = stored_state(app)
    response = client.post(path, json={"email": "someone@example.com"}, headers=admin)
    assert response.status_code == 404
    assert response.json == {"error": "Not Found", "detail": "No subscriber has that address."}
    after = stored_state(app)
    after["api_tokens"] = before["api_tokens"]
    assert after == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not an address"}, "email"),
        ({"email": ["reader@example.com"]}, "email"),
        ({"email": "x" * 400 + "@example.com"}, "email"),
        ({}, "email"),
        ({"email": "reader@example.com", "and": "more"}, "and"),
        ("reader@example.com", "_schema"),
    ],
)
@pytest.mark.parametrize("path", [EXPORT, ERASE])
def test_invalid_bodies_are_a_json_422(app, client, admin, reader, path, body, field):
    response = client.post(path, json=body, headers=admin)
    assert response.status_code == 422
    assert set(response.json["errors"]) == {field}
    assert audit(app) == []


def test_the_document_describes_every_part_of_an_export(app, client, admin, reader):
    """The OpenAPI document names every field an export returns, down to the subscriptions,
    signup requests and suppression, so a client can rely on it."""
    with app.app_context():
        db.session.add(
            SignupRequest(
                subscriber_id=reader,
                topic_ids=[1],
                frequency="daily",
                timezone="UTC",
                daily_hour=7,
                weekly_day=0,
                weekly_hour=7,
            )
        )
        queue_email(
            template="manage_link",
            to_address="reader@example.com",
            subject="Manage your email alerts",
            subscriber_id=reader,
        )
        db.session.commit()
    suppress(app, "reader@example.com")
    exported = client.post(EXPORT, json={"email": "reader@example.com"}, headers=admin).json
    document = client.get("/api/v1/openapi.json").json["components"]["schemas"]

    def described(schema: dict, value: dict, where: str) -> None:
        properties = schema["properties"]
        assert set(value) <= set(properties), (where, set(value) - set(properties))
        for key, part in value.items():
            field = properties[key]
            items = field.get("items", {})
            reference = field.get("$ref") or items.get("$ref")
            if reference is None:
                for one_of in field.get("allOf", []) + field.get("oneOf", []):
                    reference = reference or one_of.get("$ref")
            if reference and part:
                nested = document[reference.rsplit("/", 1)[-1]]
                for each in part if isinstance(part, list) else [part]:
                    described(nested, each, f"{where}.{key}")

    assert exported["subscriptions"] and exported["signup_requests"] and exported["emails"]
    assert exported["suppression"]
    described(document["SubscriberExport"], exported, "export")
