"""GET routes: topics, feeds with their health, articles (filters, pages) and stats."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert

from alertsvc.extensions import db
from alertsvc.models import Feed, OutboxEmail, SignupRequest, utcnow
from tests.api.helpers import seed_service
from tests.factories import (
    create_article,
    create_feed,
    create_subscriber,
    create_token,
    create_topic,
    seed_topics,
    subscriber_id_for,
)


@pytest.fixture
def reader(app) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(app, 'dashboard', ['read'])}"}


def test_topics_list_and_one(app, client, reader):
    seed_topics(app)
    response = client.get("/api/v1/topics", headers=reader)
    assert response.status_code == 200
    slugs = [topic["slug"] for topic in response.json["topics"]]
    assert "data" in slugs and "digital-government" in slugs
    one = client.get("/api/v1/topics/data", headers=reader)
    assert one.status_code == 200
    assert one.json["name"] == "Data" and one.json["retired_at"] is None
    for slug in ("nope", "%00", "x" * 5000):  # NUL: PostgreSQL text cannot hold one
        missing = client.get(f"/api/v1/topics/{slug}", headers=reader)
        assert missing.status_code == 404
        assert missing.json == {"error": "Not Found", "detail": "No topic with that slug."}


def test_feeds_show_their_health(app, client, reader):
    seed_topics(app)
    now = utcnow()
    create_feed(app, "https://ok.example.org/feed", ["data"], newest_item_at=now)
    broken_id = create_feed(
        app,
        "https://broken.example.org/feed",
        ["data"],
        last_error="HTTP 500",
        parked_at=now,
        newest_item_at=now - timedelta(days=60),
    )
    with app.app_context():
        db.session.get(Feed, broken_id).consecutive_failures = 9
        db.session.commit()
    feeds = client.get("/api/v1/feeds", headers=reader).json["feeds"]
    ok, broken = feeds
    assert ok["health"] == {
        "failing": False,
        "stale": False,
        "parked": False,
        "disabled": False,
        "problems": [],
    }
    assert ok["topics"] == ["data"]
    assert broken["last_error"] == "HTTP 500"
    assert broken["health"]["failing"] and broken["health"]["stale"] and broken["health"]["parked"]
    problems = broken["health"]["problems"]
    assert [problem.split()[0] for problem in problems] == ["PARKED", "FAILING:", "STALE:"]


def test_articles_filtered_and_paged(app, client, reader):
    topics = seed_topics(app)
    now = utcnow()
    ids = [
        create_article(
            app,
            f"Article {n}",
            [topics["data"] if n % 2 else topics["cyber-security"]],
            now - timedelta(days=10 - n),
        )
        for n in range(6)
    ]
    first = client.get("/api/v1/articles?limit=4", headers=reader)
    assert first.status_code == 200
    assert [a["id"] for a in first.json["articles"]] == ids[::-1][:4]
    cursor = first.json["next_before_id"]
    assert cursor == ids[2]
    rest = client.get(f"/api/v1/articles?limit=4&before_id={cursor}", headers=reader).json
    assert [a["id"] for a in rest["articles"]] == [ids[1], ids[0]]
    assert rest["next_before_id"] is None

    data = client.get("/api/v1/articles?topic=data", headers=reader).json["articles"]
    assert [a["title"] for a in data] == ["Article 5", "Article 3", "Article 1"]
    assert data[0]["topics"] == ["data"]
    since = (now - timedelta(days=6, hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    recent = client.get(f"/api/v1/articles?since={since}", headers=reader).json["articles"]
    assert [a["title"] for a in recent] == ["Article 5", "Article 4"]

    one = client.get(f"/api/v1/articles/{ids[0]}", headers=reader)
    assert one.status_code == 200 and one.json["title"] == "Article 0"
    assert client.get("/api/v1/articles/999999", headers=reader).status_code == 404
    assert client.get(f"/api/v1/articles/{2**70}", headers=reader).status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=x",
        "before_id=0",
        "since=yesterday",
        "since=9999-12-31T23:00:00-23:59",
        "topic=%00",
        "topic=Data",
        "colour=red",
    ],
)
def test_bad_arguments_are_a_json_422_naming_them(app, client, reader, query):
    response = client.get(f"/api/v1/articles?{query}", headers=reader)
    assert response.status_code == 422
    assert response.json["error"] == "Unprocessable Entity"
    assert set(response.json["errors"]) == {query.split("=")[0]}


def test_stats(app, client, reader):
    seed_service(app)
    topics = seed_topics(app)
    pending = subscriber_id_for(app, "pending@example.com")
    with app.app_context():
        for _ in range(2):  # asked twice, counted once
            db.session.add(
                SignupRequest(
                    subscriber_id=pending,
                    topic_ids=[topics["data"], topics["cyber-security"]],
                    frequency="weekly",
                    timezone="UTC",
                    daily_hour=7,
                    weekly_day=0,
                    weekly_hour=7,
                )
            )
        db.session.commit()
    response = client.get("/api/v1/stats", headers=reader)
    assert response.status_code == 200
    stats = response.json
    assert stats["subscribers"] == [
        {"topic": "cyber-security", "frequency": "weekly", "confirmed": 0, "pending": 1},
        {"topic": "data", "frequency": "daily", "confirmed": 1, "pending": 0},
        {"topic": "data", "frequency": "weekly", "confirmed": 0, "pending": 1},
        {"topic": "digital-government", "frequency": "weekly", "confirmed": 1, "pending": 0},
    ]
    assert stats["outbox"]["queued"] == 1 and stats["outbox"]["sent"] == 0
    assert stats["oldest_queued_seconds"] is not None and stats["oldest_queued_seconds"] < 60
    days = stats["emails_per_day"]
    assert len(days) == 30 and days[-1]["day"] == utcnow().date().isoformat()
    assert days[-1] == {
        "day": days[-1]["day"],
        "queued": 1,
        "sent": 0,
        "failed": 0,
        "suppressed": 0,
    }
    assert sum(day["queued"] for day in days[:-1]) == 0


def test_stats_count_as_the_dashboard_does(app, client, reader):
    """Sent by the day sent; failed and suppressed by the day queued; erased and unconfirmed
    subscribers' subscriptions left out."""
    data = create_topic(app, "data", "Data")
    create_subscriber(app, "a@example.com", {data: "daily"})
    create_subscriber(app, "gone@example.com", {data: "daily"}, erased_at=utcnow())
    create_subscriber(app, "never@example.com", {data: "daily"}, confirmed=False)
    now = utcnow()
    yesterday = now - timedelta(days=1)
    with app.app_context():
        db.session.execute(
            insert(OutboxEmail),
            [
                {"template": "alert", "created_at": yesterday, "status": "sent", "sent_at": now},
                {
                    "template": "alert",
                    "created_at": yesterday,
                    "next_attempt_at": now,
                    "status": "failed",
                },
            ],
        )
        db.session.commit()
    stats = client.get("/api/v1/stats", headers=reader).json
    assert stats["subscribers"] == [
        {"topic": "data", "frequency": "daily", "confirmed": 1, "pending": 0}
    ]
    *_, before, today = stats["emails_per_day"]
    assert (before["queued"], before["sent"], before["failed"]) == (2, 0, 1)
    assert (today["queued"], today["sent"], today["failed"]) == (0, 1, 0)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/topics?x=1",
        "/api/v1/topics/data?x=1",
        "/api/v1/feeds?x=1",
        "/api/v1/stats?x=1",
        "/api/v1/articles?x=1",
        "/api/v1/articles/1?x=1",
        "/api/v1/runs?x=1",
        "/api/v1/runs/1?x=1",
        "/api/v1/articles?limit=5&x=1",
    ],
)
def test_every_get_route_refuses_unknown_parameters(app, client, path):
    seed_topics(app)
    everything = {"Authorization": f"Bearer {create_token(app, 'all', ['read', 'runs:write'])}"}
    response = client.get(path, headers=everything)
    assert response.status_code == 422, path
    assert response.json["error"] == "Unprocessable Entity"
    assert response.json["errors"] == {"x": ["Unknown field."]}


@pytest.mark.parametrize(
    "query",
    ["topic=data&topic=cyber-security", "limit=1&limit=2", "limit=1&limit=1"],
)
def test_repeated_parameters_are_refused(app, client, reader, query):
    seed_topics(app)
    response = client.get(f"/api/v1/articles?{query}", headers=reader)
    assert response.status_code == 422
    [name] = response.json["errors"]
    assert response.json["errors"][name] == ["Given more than once: give it once."]
    assert client.get("/api/v1/runs?limit=1&limit=2", headers=reader).status_code == 422


def test_parameters_are_checked_after_the_token(app, client, reader):
    assert client.get("/api/v1/feeds?x=1").status_code == 401
    no_scope = {"Authorization": f"Bearer {create_token(app, 'in', ['articles:write'])}"}
    assert client.get("/api/v1/feeds?x=1", headers=no_scope).status_code == 403
    assert client.get("/api/v1/feeds", headers=reader).status_code == 200
    assert client.get("/api/v1/articles?limit=1&topic=data", headers=reader).status_code == 200
