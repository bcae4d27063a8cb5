"""Signed links: each works for its own purpose only, under the current key or a listed
fallback only, and not at all once its subscriber is erased.

tests/subscriptions covers many single cases (confirm tokens at the manage and unsubscribe
pages, rotated keys for manage and unsubscribe, erased subscribers' confirm and manage
links); this is the whole matrix, each token carrying the payload the other page would
accept, so only the purpose (the salt) can be what refuses it.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from alertsvc.extensions import db
from alertsvc.models import SignupRequest, Subscriber, utcnow
from alertsvc.tokens import TokenPurpose, unsubscribe_payload
from tests.conftest import TEST_SECRET_KEY
from tests.factories import create_subscriber, seed_topics, stored_state
from tests.subscriptions.helpers import csrf_token, page_text, signed_path

OLD_KEY = "the-old-key-0123456789abcdefghijklmnopq"
PURPOSES = list(TokenPurpose)


@pytest.fixture
def reader(app: Flask) -> dict[str, Any]:
    """A confirmed subscriber with a live subscription and a pending signup request."""
    topics = seed_topics(app)
    subscriber_id = create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
    with app.app_context():
        request = SignupRequest(
            subscriber_id=subscriber_id,
            topic_ids=[topics["cyber-security"]],
            frequency="daily",
            timezone="UTC",
            daily_hour=7,
            weekly_day=0,
            weekly_hour=7,
        )
        db.session.add(request)
        db.session.commit()
        request_id = request.id
    return {
        TokenPurpose.CONFIRM: request_id,
        TokenPurpose.MANAGE: subscriber_id,
        TokenPurpose.UNSUBSCRIBE: unsubscribe_payload(subscriber_id, None),
    }


def _visit(app: Flask, path: str) -> list[Any]:
    """GET the link, then POST it as its page's button would (CSRF token included; the
    one-click unsubscribe needs none)."""
    client = app.test_client()
    data = {"csrf_token": csrf_token(client, "/"), "List-Unsubscribe": "One-Click"}
    return [client.get(path), client.post(path, data=data)]


def _refused(response) -> bool:
    return response.status_code in (400, 410) and "This link does not work" in page_text(response)


@pytest.mark.parametrize(
    ("made_for", "used_at"),
    [(a, b) for a in PURPOSES for b in PURPOSES if a != b],
    ids=lambda p: p.name.lower(),
)
def test_a_token_works_only_for_its_own_purpose(app: Flask, reader, made_for, used_at):
    # Signed for one purpose, carrying what the other page would accept.
    path = signed_path(app, made_for, reader[used_at])
    at = {
        TokenPurpose.CONFIRM: "/confirm/",
        TokenPurpose.MANAGE: "/manage/",
        TokenPurpose.UNSUBSCRIBE: "/unsubscribe/",
    }[used_at]
    path = at + path.rsplit("/", 1)[1]
    genuine = signed_path(app, used_at, reader[used_at])
    assert app.test_client().get(genuine).status_code == 200  # the payload itself is good
    before = stored_state(app)

    for response in _visit(app, path):
        assert _refused(response), (response.status_code, path)
    assert stored_state(app) == before


@pytest.mark.parametrize("purpose", PURPOSES, ids=lambda p: p.name.lower())
def test_an_old_key_is_honoured_only_while_it_is_a_listed_fallback(
    app: Flask, make_app, reader, purpose
):
    old = make_app(SECRET_KEY=OLD_KEY)
    path = signed_path(old, purpose, reader[purpose])
    rotated = make_app(SECRET_KEY=TEST_SECRET_KEY, SECRET_KEY_FALLBACKS=[OLD_KEY])
    dropped = make_app(SECRET_KEY=TEST_SECRET_KEY, SECRET_KEY_FALLBACKS=["another-" + OLD_KEY])

    assert rotated.test_client().get(path).status_code == 200
    before = stored_state(app)
    for response in _visit(dropped, path):
        assert _refused(response)
    assert stored_state(app) == before


def test_every_link_of_an_erased_subscriber_does_nothing(app: Flask, reader):
    """Erasure deletes the signup requests too; this one is kept to prove the guard."""
    paths = [signed_path(app, purpose, reader[purpose]) for purpose in PURPOSES]
    with app.app_context():
        subscriber = db.session.get(Subscriber, reader[TokenPurpose.MANAGE])
        subscriber.erased_at = utcnow()
        db.session.commit()
    before = stored_state(app)

    for path in [*paths, f"{paths[1]}/erase", f"{paths[1]}/unsubscribe-all"]:
        for response in _visit(app, path):
            assert _refused(response), (path, response.status_code)
    assert stored_state(app) == before
    with app.app_context():
        assert db.session.scalars(select(SignupRequest.confirmed_at)).all() == [None]


@pytest.mark.parametrize(
    ("purpose", "payload"),
    [
        (TokenPurpose.CONFIRM, 10**30),
        (TokenPurpose.MANAGE, 10**30),
        (TokenPurpose.UNSUBSCRIBE, unsubscribe_payload(10**30, None)),
        (TokenPurpose.UNSUBSCRIBE, {"s": 1, "t": [10**30]}),
    ],
    ids=["confirm", "manage", "unsubscribe", "unsubscribe topic"],
)
def test_a_signed_link_naming_an_id_past_any_row_is_refused_not_an_error(
    app: Flask, reader, purpose, payload
):
    """Only the key's holder can sign one, but a number past the database's integer failed
    in the database (500) instead of naming no row."""
    before = stored_state(app)
    for response in _visit(app, signed_path(app, purpose, payload)):
        assert _refused(response), (response.status_code, purpose)
    assert stored_state(app) == before
