from __future__ import annotations

import io
import json

import pytest

from alertsvc.api.tokens import ApiToken
from alertsvc.extensions import db
from alertsvc.models import Article
from tests.articles.helpers import article_writes, articles, statements
from tests.factories import count, create_token, rows, seed_topics

ARTICLES = "/api/v1/articles"


def article(n: int = 1, **fields) -> dict:
    return {
        "title": f"Article {n}",
        "url": f"https://news.example.org/articles/{n}",
        "summary": f"<p>Summary {n}</p>",
        "topics": ["data"],
        **fields,
    }


def test_create_one_then_again_is_200_and_changes_nothing(app, client, auth):
    seed_topics(app)
    sent = article(
        1,
        guid="pt-1",
        author="Sam Reporter",
        published="2026-11-24T08:00:00Z",
        categories=["Data"],
    )
    response = client.post(ARTICLES, json=sent, headers=auth)
    assert response.status_code == 201
    [stored] = articles(app)
    assert response.json == {
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "skipped": 0,
        "articles": [{"id": stored["id"], "guid": "pt-1", "status": "created", "reason": None}],
    }
    assert stored["source"] == "api" and stored["topics"] == ["data"]
    assert stored["author"] == "Sam Reporter"

    with statements(app) as seen:
        again = client.post(ARTICLES, json=sent, headers=auth)
    assert again.status_code == 200
    assert again.json["unchanged"] == 1 and again.json["articles"][0]["status"] == "unchanged"
    assert article_writes(seen) == []
    assert articles(app) == [stored]


def test_update_and_major_update(app, client, auth):
    seed_topics(app)
    client.post(ARTICLES, json=article(1), headers=auth)
    response = client.post(ARTICLES, json=article(1, title="Article 1, corrected"), headers=auth)
    assert response.status_code == 200 and response.json["updated"] == 1
    assert articles(app)[0]["revision"] == 0
    response = client.post(
        ARTICLES, json=article(1, summary="<p>New facts</p>", major_update=True), headers=auth
    )
    assert response.status_code == 200 and response.json["updated"] == 1
    [stored] = articles(app)
    assert stored["revision"] == 1 and stored["major_update_at"] is not None
    assert stored["summary"] == "<p>New facts</p>"


def test_batch_of_500(app, client, auth):
    seed_topics(app)
    batch = [article(n, author="A. Correspondent, Public Technology") for n in range(500)]
    body = json.dumps(batch)
    assert len(body) > app.config["MAX_CONTENT_LENGTH"], "bigger than the site's form limit"
    with statements(app) as seen:
        response = client.post(ARTICLES, data=body, content_type="application/json", headers=auth)
    assert response.status_code == 201
    assert response.json["created"] == 500 and len(response.json["articles"]) == 500
    assert len(seen) < 25, "set-based: not a statement per article"
    assert count(app, Article) == 500

    batch[7]["title"] = "Article 7, updated"
    response = client.post(ARTICLES, json=[*batch[1:], article(500)], headers=auth)
    assert response.status_code == 201
    assert (response.json["created"], response.json["updated"], response.json["unchanged"]) == (
        1,
        1,
        498,
    )


def test_more_than_500_or_none_is_422(app, client, auth):
    seed_topics(app)
    response = client.post(ARTICLES, json=[article(n) for n in range(501)], headers=auth)
    assert response.status_code == 422
    assert response.json["errors"] == {"_schema": ["Send between 1 and 500 articles."]}
    response = client.post(ARTICLES, json=[], headers=auth)
    assert response.status_code == 422
    assert count(app, Article) == 0


def test_validation_errors_name_the_fields(app, client, auth):
    seed_topics(app)
    response = client.post(
        ARTICLES,
        json={"title": " ", "url": "javascript:alert(1)", "published": "yesterday", "x": 1},
        headers=auth,
    )
    assert response.status_code == 422
    assert response.json["error"] == "Unprocessable Entity"
    errors = response.json["errors"]
    assert set(errors) == {"title", "url", "published", "x"}
    assert errors["url"] == ["Not a valid URL."]
    assert errors["x"] == ["Unknown field."]

    response = client.post(
        ARTICLES,
        json=[article(1), {"url": "https://news.example.org/2"}, article(3, topics=["nope"])],
        headers=auth,
    )
    assert response.status_code == 422
    assert response.json["errors"] == {"1": {"title": ["Missing data for required field."]}}

    response = client.post(ARTICLES, json=[article(1), article(2, topics=["nope"])], headers=auth)
    assert response.status_code == 422
    assert response.json["errors"] == {"1": {"topics": ["No topic with slug 'nope'."]}}
    response = client.post(ARTICLES, json=article(2, topics=["nope", "data"]), headers=auth)
    assert response.json["errors"] == {"topics": ["No topic with slug 'nope'."]}

    for body in ("not json at all", "[1, 2]", '"a string"', "null", "{"):
        response = client.post(ARTICLES, data=body, content_type="application/json", headers=auth)
        assert response.status_code in (400, 422), body
        assert "error" in response.json
    assert count(app, Article) == 0


def test_wrong_content_type_is_415(app, client, auth):
    response = client.post(ARTICLES, data={"title": "x"}, headers=auth)
    assert response.status_code == 415
    assert response.json["error"] == "Unsupported Media Type"


def test_auth(app, client):
    seed_topics(app)
    token = create_token(app, "newsroom")
    response = client.post(ARTICLES, json=article())
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="alertsvc"'
    assert response.json["error"] == "Unauthorized"
    for header in (f"Basic {token}", f"Bearer {token}x", "Bearer alertsvc_guess", "Bearer"):
        response = client.post(ARTICLES, json=article(), headers={"Authorization": header})
        assert response.status_code == 401, header
    assert (
        'error="invalid_token"'
        in client.post(
            ARTICLES, json=article(), headers={"Authorization": "Bearer alertsvc_guess"}
        ).headers["WWW-Authenticate"]
    )

    response = client.post(ARTICLES, json=article(), headers={"Authorization": f"bearer {token}"})
    assert response.status_code == 201
    assert rows(app, db.select(ApiToken.last_used_at))[0] is not None

    result = app.test_cli_runner().invoke(args=["api-tokens", "revoke", "newsroom"])
    assert result.exit_code == 0
    response = client.post(ARTICLES, json=article(2), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert count(app, Article) == 1


def test_unauthenticated_oversized_body_is_refused_without_reading_it(app, client):
    response = client.post(
        ARTICLES, data=b"[" + b" " * 10_000_000 + b"]", content_type="application/json"
    )
    assert response.status_code == 401


def test_oversized_body_is_413(make_app, auth):
    app = make_app(API_MAX_CONTENT_LENGTH=50_000)
    response = app.test_client().post(
        ARTICLES, json=[article(n, summary="x" * 500) for n in range(200)], headers=auth
    )
    assert response.status_code == 413
    assert response.json["error"] == "Request Entity Too Large"


def test_oversized_chunked_body_is_413_not_cut_short(make_app, auth):
    """A body sent chunked (no Content-Length, as gunicorn passes it on) past the limit is
    refused, not cut at the limit and read as broken JSON, or worse as a shorter body."""
    app = make_app(API_MAX_CONTENT_LENGTH=50_000)
    body = json.dumps({"title": "Open data", "url": "https://news.example.org/a"}).encode()
    response = app.test_client().post(
        ARTICLES,
        input_stream=io.BytesIO(body + b" " * 60_000),
        headers={**auth, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413, response.json
    assert response.json["error"] == "Request Entity Too Large"
    assert count(app, Article) == 0


def test_token_is_printed_once_and_only_its_hash_stored(app, client):
    seed_topics(app)
    result = app.test_cli_runner().invoke(args=["api-tokens", "create", "CMS"])
    assert result.exit_code == 0
    token = result.output.strip()
    assert token.startswith("alertsvc_") and len(token) > 40
    [(name, token_hash)] = rows(app, db.select(ApiToken.name, ApiToken.token_hash))
    assert name == "CMS" and token not in token_hash
    response = client.post(ARTICLES, json=article(), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201
    again = app.test_cli_runner().invoke(args=["api-tokens", "create", "CMS"])
    assert again.exit_code == 1 and "already exists" in again.output


def test_csrf_does_not_apply_but_other_pages_keep_it(app, client, auth):
    seed_topics(app)
    assert client.post(ARTICLES, json=article(), headers=auth).status_code == 201
    assert client.post("/", data={"email": "a@example.org"}).status_code == 400


def test_openapi_document(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json
    operation = document["paths"]["/api/v1/articles"]["post"]
    assert set(operation["responses"]) >= {"200", "201", "401", "413", "422"}
    assert operation["security"] == [{"bearerAuth": []}]
    assert document["components"]["schemas"]["ArticleIn"]["required"] == ["title", "url"]


def test_api_errors_are_json_and_pages_stay_html(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.json["error"] == "Not Found"
    response = client.put(ARTICLES)
    assert response.status_code == 405 and response.json["error"] == "Method Not Allowed"
    page = client.get("/nothing-here")
    assert page.status_code == 404 and page.mimetype == "text/html"


def test_leading_and_trailing_spaces_are_tidied_not_refused(app, client, auth):
    seed_topics(app)
    response = client.post(
        ARTICLES, json=article(1, title="  Spaced   out\n title ", guid=" g-1 "), headers=auth
    )
    assert response.status_code == 201
    [stored] = articles(app)
    assert (stored["title"], stored["guid"]) == ("Spaced out title", "g-1")


def test_nul_bytes_and_lone_surrogates_never_reach_the_database(app, client, auth):
    seed_topics(app)
    bad = "A\u0000B\ud800C\x07"
    response = client.post(
        ARTICLES,
        data=json.dumps(
            article(1, title=bad, summary=f"<p>{bad}</p>", author=bad, guid=bad, categories=[bad])
        ),
        content_type="application/json",
        headers=auth,
    )
    assert response.status_code == 201
    [stored] = articles(app)
    assert (stored["title"], stored["summary"], stored["author"], stored["guid"]) == (
        "ABC",
        "<p>ABC</p>",
        "ABC",
        "ABC",
    )
    response = client.post(
        ARTICLES,
        data=json.dumps(article(2, topics=["da\u0000ta", "\ud800"])),
        content_type="application/json",
        headers=auth,
    )
    assert response.status_code == 422
    assert response.json["errors"]["topics"] == {
        "0": ["Not a topic slug."],
        "1": ["Not a topic slug."],
    }


def test_a_very_long_guid_is_kept_unique_by_its_hash(app, client, auth):
    seed_topics(app)
    long_guid = "€" * 2048
    first = client.post(ARTICLES, json=article(1, guid=long_guid), headers=auth)
    again = client.post(ARTICLES, json=article(1, guid=long_guid), headers=auth)
    other = client.post(ARTICLES, json=article(2, guid="€" * 2047 + "x"), headers=auth)
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert [a["guid"][:7] for a in articles(app)] == ["sha256:", "sha256:"]


def test_each_token_has_its_own_rate_limit_answered_with_json_429(make_app):
    limited = make_app(API_RATE_LIMIT="3 per minute")
    seed_topics(limited)
    first = {"Authorization": f"Bearer {create_token(limited, 'first')}"}
    second = {"Authorization": f"Bearer {create_token(limited, 'second')}"}
    client = limited.test_client()

    statuses = [
        client.post("/api/v1/articles", json=article(n), headers=first).status_code
        for n in range(4)
    ]
    assert statuses == [201, 201, 201, 429]
    refused = client.post("/api/v1/articles", json=article(9), headers=first)
    assert refused.status_code == 429 and refused.is_json
    assert refused.get_json()["error"] == "Too Many Requests"
    assert int(refused.headers["Retry-After"]) > 0
    assert client.post("/api/v1/articles", json=article(5), headers=second).status_code == 201
    assert count(limited, Article) == 4


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ("[" * 1000 + "]" * 1000, 400, "The JSON is nested too deeply."),
        ('{"title":' * 1000 + "1" + "}" * 1000, 400, "The JSON is nested too deeply."),
        ("[" * 100_000 + "]" * 100_000, 400, "The JSON is nested too deeply."),
        ("[" * 500 + "]" * 500, 422, "The request is not valid: see errors."),
        (b'{"title": "caf\xe9", "url": "https://x.org/1"}', 400, "The body is not valid UTF-8."),
        ("1" * 5000, 400, "The body is not valid JSON: a number has more than 100 characters."),
        ('{"title": 1e999}', 400, "The body is not valid JSON: the number 1e999 is too large."),
        ('{"title": NaN}', 400, "The body is not valid JSON: NaN is not a JSON value."),
        ("[-Infinity]", 400, "The body is not valid JSON: -Infinity is not a JSON value."),
        ("42", 422, "The request is not valid: see errors."),
        ('"an article"', 422, "The request is not valid: see errors."),
        ("null", 422, "The request is not valid: see errors."),
        ("", 400, "The body is not valid JSON: Expecting value: line 1 column 1 (char 0)."),
    ],
    ids=lambda value: repr(value)[:30] if isinstance(value, str | bytes) else str(value),
)
def test_any_json_the_api_cannot_take_is_a_json_4xx(app, client, auth, body, status, detail):
    seed_topics(app)
    response = client.post(ARTICLES, data=body, content_type="application/json", headers=auth)
    assert response.status_code == status
    assert response.is_json and response.json["detail"] == detail
    if status == 422 and not body.startswith("["):
        assert response.json["errors"] == {
            "_schema": ["Send an article (a JSON object) or a list of articles."]
        }
    assert count(app, Article) == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_labelled_json_is_a_json_415(app, client, auth, content_type):
    seed_topics(app)
    options = {"content_type": content_type} if content_type else {}
    response = client.post(ARTICLES, data=json.dumps(article()), headers=auth, **options)
    assert response.status_code == 415
    assert response.json == {
        "error": "Unsupported Media Type",
        "detail": "Send the articles as JSON, with Content-Type: application/json.",
    }
    assert count(app, Article) == 0


def test_invalid_and_missing_tokens_share_their_address_rate_limit(make_app):
    limited = make_app(API_RATE_LIMIT="3 per minute")
    seed_topics(limited)
    valid = {"Authorization": f"Bearer {create_token(limited, 'newsroom')}"}
    client = limited.test_client()

    def post(headers: dict[str, str], address: str = "192.0.2.1") -> int:
        return client.post(
            ARTICLES, json=article(), headers=headers, environ_base={"REMOTE_ADDR": address}
        ).status_code

    made_up = [{"Authorization": f"Bearer alertsvc_guess{n}"} for n in range(3)]
    assert [post(headers) for headers in made_up] == [401, 401, 401]
    assert post({"Authorization": "Bearer alertsvc_guess3"}) == 429
    assert post({}) == 429, "no token: the same address, the same allowance"
    assert post({"Authorization": "Bearer alertsvc_guess4"}, "192.0.2.2") == 401, (
        "another address has its own allowance"
    )
    assert post(valid) == 201, "a valid token is limited on its own, not by its address"
    assert count(limited, Article) == 1


def test_an_address_with_a_user_name_or_password_is_422(app, client, auth):
    """It would be published on topic pages, in the Atom feed and in alert emails."""
    seed_topics(app)
    response = client.post(
        ARTICLES, json=article(1, url="https://user:pass@www.example.org/x"), headers=auth
    )
    assert response.status_code == 422
    assert response.json["errors"] == {
        "url": ["Must not contain a user name or password: the address is published."]
    }
    response = client.post(
        ARTICLES, json=[article(1), article(2, url="https://user@www.example.org/y")], headers=auth
    )
    assert response.status_code == 422
    assert set(response.json["errors"]) == {"1"}
    assert count(app, Article) == 0
