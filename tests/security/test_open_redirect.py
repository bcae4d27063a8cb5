"""No open redirect: no page sends a browser off this site through a ``next`` or
return-style parameter.

Every GET route in the URL map is asked, signed out and signed in as an admin, with every
parameter name such links use set to an address elsewhere; wherever the answer is a
redirect, its ``Location`` must stay on this site. Then the one route that does read
``next`` (signing in) is followed through with each address.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from alertsvc.models import utcnow
from tests.admin.helpers import sign_in
from tests.factories import create_article, create_operator, create_subscriber, seed_topics

RETURN_PARAMETERS = (
    "next",
    "return_to",
    "returnTo",
    "return",
    "redirect",
    "redirect_to",
    "redirect_uri",
    "url",
    "continue",
    "came_from",
    "back",
    "goto",
)
ELSEWHERE = (
    "//evil.example",
    "https://evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "javascript:alert(1)",
    "/admin/..//evil.example",
    "http:evil.example",
    "%2F%2Fevil.example",
)
# Pages served from files or only in development: nothing there reads a parameter.
SKIPPED_ENDPOINTS = frozenset({"static", "dev_mail.mailbox", "dev_mail.show", "dev_mail.show_html"})


def on_this_site(location: str) -> bool:
    """Whether a browser following ``location`` from http://localhost/ stays there.

    Browsers treat a backslash as a slash and drop tabs and newlines, so ``/\\evil`` and
    ``/<TAB>/evil`` leave the site as ``//evil`` does.
    """
    cleaned = re.sub(r"[\t\r\n]", "", location).replace("\\", "/").lstrip()
    parts = urlsplit(cleaned)
    if parts.scheme not in ("", "http", "https"):
        return False
    if parts.scheme and parts.netloc != "localhost":
        return False
    return not parts.netloc or parts.netloc == "localhost"


def _paths(app: Flask, ids: dict[str, int]) -> list[str]:
    """One concrete path for each GET rule, its variables filled from ``ids``."""
    paths = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIPPED_ENDPOINTS or "GET" not in (rule.methods or ()):
            continue
        values = {name: ids.get(name, 1) for name in rule.arguments}
        values.update({name: "daily" for name in rule.arguments if name == "frequency"})
        values.update({name: "data" for name in rule.arguments if name == "slug"})
        values.update({name: "x" for name in rule.arguments if name == "token"})
        with app.test_request_context():
            paths.append(rule.build(values, append_unknown=False)[1])
    return sorted(set(paths))


@pytest.fixture
def ids(app: Flask) -> dict[str, int]:
    topics = seed_topics(app)
    subscriber = create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
    article = create_article(app, "Open data week", [topics["data"]], utcnow())
    return {"subscriber_id": subscriber, "article_id": article, "topic_id": topics["data"]}


def test_the_walk_reaches_every_kind_of_page(app: Flask, ids: dict[str, int]):
    paths = _paths(app, ids)
    for expected in ("/", "/manage", "/admin/login", "/topics/data", "/api/v1/topics"):
        assert expected in paths
    assert len(paths) > 40


@pytest.mark.parametrize("signed_in", [False, True], ids=["signed-out", "admin"])
def test_no_get_route_redirects_off_the_site(
    app: Flask, client: FlaskClient, ids: dict[str, int], signed_in: bool
):
    if signed_in:
        create_operator(app, "ops@publisher.example", "admin")
        assert sign_in(client).status_code == 302
    redirects = 0
    for path in _paths(app, ids):
        for target in ELSEWHERE:
            query = urlencode([(name, target) for name in RETURN_PARAMETERS])
            response = client.get(f"{path}?{query}")
            if 300 <= response.status_code < 400:
                redirects += 1
                location = response.headers["Location"]
                assert on_this_site(location), (path, target, location)
    assert redirects, "the walk met no redirect at all: the check would prove nothing"


@pytest.mark.parametrize("target", ELSEWHERE)
def test_signing_in_never_returns_off_the_site(app: Flask, target: str):
    create_operator(app, "ops@publisher.example", "admin")
    client = app.test_client()
    response = sign_in(client, query_string={"next": target})
    assert response.status_code == 302
    assert on_this_site(response.headers["Location"]), response.headers["Location"]
    assert response.headers["Location"].startswith("/admin")


@pytest.mark.parametrize(
    ("location", "stays"),
    [
        ("/admin/", True),
        ("/manage/abc?x=1", True),
        ("http://localhost/admin/", True),
        ("//evil.example", False),
        ("/\\evil.example", False),
        ("/\t/evil.example", False),
        ("https://evil.example/", False),
        ("javascript:alert(1)", False),
        (" //evil.example", False),
    ],
)
def test_the_check_itself(location: str, stays: bool):
    assert on_this_site(location) is stays
