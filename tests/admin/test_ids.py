"""Ids past our id columns (PostgreSQL ``integer``) in an admin address: no page gives 500.

Every admin rule with an ``<int:…>`` argument is read from the URL map, so routes added
later are checked too.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import IntegerConverter, Rule

from alertsvc.ids import ID_MAX, digits_at_most
from tests.admin.helpers import csrf_token
from tests.factories import create_token

TOO_BIG = [2**31, 2**63, 10**30]
CHANGES = {"POST", "PUT", "PATCH", "DELETE"}


def rules_with_ids(app: Flask, prefix: str) -> list[Rule]:
    found = [
        rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(prefix)
        and any(isinstance(c, IntegerConverter) for c in rule._converters.values())
    ]
    assert found, f"no {prefix} rule with an id: did the URL map change?"
    return found


def path_with(rule: Rule, number: int) -> str:
    """The rule's path with ``number`` for each id and a word for any other argument."""
    path = re.sub(r"<int:[^>]+>", str(number), rule.rule)
    return re.sub(r"<[^>]+>", "x", path)


def test_every_admin_id_route_answers_404_for_an_id_too_big_for_the_database(
    app: Flask, admin_client: FlaskClient
):
    token = csrf_token(admin_client, "/admin/")
    for rule in rules_with_ids(app, "/admin"):
        for number in TOO_BIG:
            path = path_with(rule, number)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                data = {"csrf_token": token} if method in CHANGES else None
                response = admin_client.open(path, method=method, data=data)
                assert response.status_code == 404, (method, path, response.status_code)
                assert "Page not found" in response.get_data(as_text=True)


def test_the_largest_id_still_reaches_the_page(admin_client: FlaskClient):
    """The bound is the column's: an id up to it is looked up, and names no topic here."""
    response = admin_client.get(f"/admin/topics/{ID_MAX}")
    assert response.status_code == 404
    assert admin_client.get("/admin/topics/7").status_code == 404


def test_the_api_still_answers_404_for_ids_too_big(app: Flask):
    headers = {"Authorization": f"Bearer {create_token(app, scopes=['read'])}"}
    client = app.test_client()
    for rule in rules_with_ids(app, "/api"):
        for number in [ID_MAX, *TOO_BIG]:
            path = path_with(rule, number)
            response = client.get(path, headers=headers)
            assert response.status_code == 404, (path, response.status_code)
            assert response.is_json, path


@pytest.mark.parametrize("path", ["/admin/audit", "/admin/runs", "/admin/articles"])
@pytest.mark.parametrize("before", [str(2**31), str(2**63), "9" * 40, "-1", "0", "abc", "١٢"])
def test_a_before_that_is_no_id_is_refused_with_400(admin_client: FlaskClient, path, before):
    response = admin_client.get(path, query_string={"before": before})
    assert response.status_code == 400, response.status_code
    assert "there is a problem with your request" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/admin/audit", "/admin/runs", "/admin/articles"])
def test_a_before_that_is_an_id_pages_as_before(admin_client: FlaskClient, path):
    assert admin_client.get(path, query_string={"before": str(ID_MAX)}).status_code == 200
    assert admin_client.get(path, query_string={"before": ""}).status_code == 200


def test_no_admin_page_gives_500_for_a_huge_before(app: Flask, admin_client: FlaskClient):
    pages = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/admin") and not rule.arguments and "GET" in rule.methods
    ]
    for page in pages:
        response = admin_client.get(page, query_string={"before": str(2**63)})
        assert response.status_code == 400, (page, response.status_code)


@pytest.mark.parametrize("limit", [0, 5, 9, 10, 19, 20, 100, 305, 999, 1000])
def test_the_id_pattern_matches_exactly_the_numbers_up_to_its_limit(limit: int):
    pattern = re.compile(rf"(?:{digits_at_most(limit)})\Z")
    assert [n for n in range(2500) if pattern.match(str(n))] == list(range(limit + 1))


def test_the_id_pattern_stops_at_the_largest_id():
    pattern = re.compile(rf"(?:{digits_at_most(ID_MAX)})\Z")
    for number in [0, 7, 999_999_999, 1_999_999_999, 2_147_483_639, ID_MAX]:
        assert pattern.match(str(number)), number
    for number in [ID_MAX + 1, 2_147_483_650, 2_200_000_000, 9_999_999_999, 2**63]:
        assert not pattern.match(str(number)), number
