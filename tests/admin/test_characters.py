"""NUL and other control characters sent to a page: refused with 400, never stored, never 500.

PostgreSQL refused a NUL (500); SQLite stored it, and a topic description with one showed on
the public sign-up page.
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from alertsvc.api.tokens import ApiToken
from alertsvc.models import AuditEntry, Topic
from tests.admin.helpers import csrf_token, post_form
from tests.factories import count, create_token, create_topic, rows

REFUSED = "contains a character that cannot be used"


def _topic(**fields: str) -> dict[str, str]:
    return {
        "slug": "data",
        "name": "Data",
        "description": "",
        "query": "",
        "action": "save",
        **fields,
    }


def _refused(response) -> bool:
    return response.status_code == 400 and REFUSED in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "fields",
    [
        {"query": "a\x00b"},
        {"description": "a\x00b"},
        {"name": "Da\x00ta"},
        {"description": "bell \x07"},
        {"description": "escape \x1b[31m"},
        {"description": "right-to-left \u202e override"},
        {"name": "isolate \u2066x\u2069"},
    ],
)
def test_a_topic_with_an_unusable_character_is_refused_and_not_stored(
    app: Flask, admin_client: FlaskClient, fields
):
    response = post_form(admin_client, "/admin/topics/new", _topic(**fields), csrf_from="/admin/")
    assert _refused(response), response.status_code
    assert count(app, Topic) == 0
    assert rows(app, select(AuditEntry.action)) == ["operator.sign_in"]


def test_lines_and_tabs_in_a_form_are_text(app: Flask, admin_client: FlaskClient):
    fields = _topic(description="First line\r\nsecond\tline")
    response = post_form(admin_client, "/admin/topics/new", fields, csrf_from="/admin/")
    assert response.status_code in (200, 302, 303), response.status_code
    assert rows(app, select(Topic.slug)) == ["data"]


def test_a_token_name_with_a_nul_is_refused(app: Flask, admin_client: FlaskClient):
    data = {"name": "nul\x00x", "scopes": ["read"]}
    response = post_form(admin_client, "/admin/delivery/tokens", data, csrf_from="/admin/")
    assert _refused(response)
    assert count(app, ApiToken) == 0


def test_every_value_of_a_repeated_field_is_checked(app: Flask, admin_client: FlaskClient):
    data = {"name": "Newsroom", "scopes": ["read", "articles:write\x00"]}
    response = post_form(admin_client, "/admin/delivery/tokens", data, csrf_from="/admin/")
    assert _refused(response)
    assert count(app, ApiToken) == 0


@pytest.mark.parametrize(
    "path",
    [
        "/admin/subscribers?q=a%00b",
        "/admin/audit?action=a%00b",
        "/admin/delivery/suppressions?q=a%00b",
        "/admin/articles?q=a%00b",
        "/admin/topics?x=1&x=a%0Db",
        "/admin/audit?a%00=1",
        "/admin/subscribers?q=%E2%80%AEmoc.elpmaxe",
    ],
)
def test_an_admin_query_with_an_unusable_character_is_refused(admin_client: FlaskClient, path):
    assert _refused(admin_client.get(path))


def test_public_pages_refuse_it_too(app: Flask, client: FlaskClient):
    create_topic(app, "data", "Data")
    assert _refused(client.get("/?topic=a%00b"))
    data = {
        "email": "reader@example.com\x00",
        "topics": "data",
        "csrf_token": csrf_token(client, "/"),
    }
    assert _refused(client.post("/", data=data))
    # A right-to-left mark in a public field is someone's text, not an admin page's problem.
    assert not _refused(client.get("/?x=%E2%80%AE"))


def test_the_signup_page_never_shows_a_nul_from_a_topic(app: Flask, admin_client: FlaskClient):
    post_form(
        admin_client, "/admin/topics/new", _topic(description="Hidden\x00text"), csrf_from="/admin/"
    )
    assert "\x00" not in app.test_client().get("/").get_data(as_text=True)


def test_sign_in_with_a_newline_in_next_is_refused_not_500(app: Flask):
    client = app.test_client()
    response = client.post(
        "/admin/login?next=%2Fadmin%0D%0AX-Injected%3A%201",
        data={"email": "ops@publisher.example", "password": "x", "csrf_token": csrf_token(client)},
    )
    assert _refused(response)
    assert "X-Injected" not in response.headers


def test_the_api_keeps_its_own_answers(app: Flask):
    response = app.test_client().get("/api/v1/articles?q=a%00b")
    assert response.status_code != 500
    assert response.is_json


@pytest.mark.parametrize(
    "path",
    [
        "/topics/a%00b",
        "/topics/a%00b.atom",
        "/topics/a%01b",
        "/confirm/a%00b",
        "/manage/a%00b",
        "/manage/a%00b/erase",
        "/unsubscribe/a%00b",
        "/admin/subscribers/1/preview/a%00b",
    ],
)
def test_a_path_with_an_unusable_character_is_refused(app: Flask, admin_client, path):
    """A NUL in a path segment reached the database as a topic slug: PostgreSQL refused it
    and the page was a 500 (found by bench/reliability/scenario_hostile_input.py)."""
    create_topic(app, "data", "Data")
    assert _refused(admin_client.get(path))


def test_an_api_path_with_a_nul_is_answered_by_the_api_not_500(app: Flask):
    token = create_token(app, "reader", ["read"])
    response = app.test_client().get(
        "/api/v1/topics/a%00b", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code in (404, 422)
    assert response.is_json
