"""POST /runs (dry run, run, refusals), GET /runs and GET /runs/<id>: a run's progress."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from alertsvc.digests.schedule import floor_hour
from alertsvc.extensions import db
from alertsvc.models import AuditEntry, DigestRun, OutboxEmail, OutboxStatus, utcnow
from tests.digests.helpers import start_subscriptions_at
from tests.factories import (
    count,
    create_article,
    create_subscriber,
    create_token,
    rows,
    seed_topics,
    stored_state,
)

RUNS = "/api/v1/runs"


@pytest.fixture
def ops(app) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(app, 'ops', ['runs:write', 'read'])}"}


def a_reader_due_now(app) -> int:
    """A daily subscriber whose digest is due in the run ending this hour, with an article."""
    topics = seed_topics(app)
    window_end = floor_hour(utcnow())
    subscriber_id = create_subscriber(
        app,
        "reader@example.com",
        {topics["data"]: "daily"},
        timezone="UTC",
        daily_hour=window_end.hour,
    )
    start_subscriptions_at(app, subscriber_id, window_end - timedelta(days=2))
    create_article(app, "Open data week", [topics["data"]], window_end - timedelta(hours=3))
    return subscriber_id


def test_dry_run_counts_and_writes_nothing(app, client, ops):
    a_reader_due_now(app)
    before = stored_state(app)
    response = client.post(RUNS, json={"frequency": "daily", "dry_run": True}, headers=ops)
    assert response.status_code == 200
    body = response.json
    assert (body["dry_run"], body["subscribers"], body["emails"], body["run"]) == (
        True,
        1,
        1,
        None,
    )
    assert body["window_end"] == floor_hour(utcnow()).isoformat()
    after = stored_state(app)
    after["api_tokens"] = before["api_tokens"]  # last used, stamped by the request
    assert after == before


def test_dry_run_of_a_planned_run_reports_it(app, client, ops):
    """As the admin dry run and the real POST do: already planned, and which run."""
    a_reader_due_now(app)
    at = floor_hour(utcnow()).isoformat()
    planned = client.post(RUNS, json={"frequency": "daily", "at": at}, headers=ops).json
    before = stored_state(app)
    response = client.post(
        RUNS, json={"frequency": "daily", "at": at, "dry_run": True}, headers=ops
    )
    assert response.status_code == 200
    body = response.json
    assert (body["dry_run"], body["already_planned"], body["emails"]) == (True, True, 0)
    assert body["run"]["id"] == planned["run"]["id"]
    assert body["run"]["status"] == "planned"
    after = stored_state(app)
    after["api_tokens"] = before["api_tokens"]
    assert after == before
    real = client.post(RUNS, json={"frequency": "daily", "at": at}, headers=ops).json
    assert (real["already_planned"], real["run"]["id"]) == (True, planned["run"]["id"])


def test_run_queues_the_digests_is_audited_and_reports_progress(app, client, ops):
    a_reader_due_now(app)
    response = client.post(RUNS, json={"frequency": "daily"}, headers=ops)
    assert response.status_code == 201
    body = response.json
    assert (body["dry_run"], body["already_planned"], body["emails"]) == (False, False, 1)
    run = body["run"]
    assert (run["status"], run["trigger"], run["subscriber_count"], run["email_count"]) == (
        "planned",
        "api",
        1,
        1,
    )
    assert run["emails"]["queued"] == 1
    audit = db.select(AuditEntry.actor, AuditEntry.action, AuditEntry.target, AuditEntry.details)
    entry = ("token:ops", "run.trigger", f"run {run['id']}")
    details = {"frequency": "daily", "window_end": run["window_end"]}
    assert rows(app, audit) == [(*entry, {**details, "already_planned": False})]

    again = client.post(RUNS, json={"frequency": "daily"}, headers=ops)
    assert again.status_code == 200 and again.json["already_planned"] is True
    assert again.json["run"]["id"] == run["id"]
    assert count(app, OutboxEmail) == 1
    assert rows(app, audit.order_by(AuditEntry.id))[1] == (
        *entry,
        {**details, "already_planned": True},
    )

    with app.app_context():
        db.session.execute(update(OutboxEmail).values(status=OutboxStatus.SENT, sent_at=utcnow()))
        db.session.commit()
    progress = client.get(f"{RUNS}/{run['id']}", headers=ops)
    assert progress.status_code == 200
    assert progress.json["emails"] == {
        "queued": 0,
        "sending": 0,
        "sent": 1,
        "delivered": 0,
        "failed": 0,
        "suppressed": 0,
    }
    listed = client.get(RUNS, headers=ops).json
    assert [r["id"] for r in listed["runs"]] == [run["id"]]
    assert listed["next_before_id"] is None
    assert client.get(f"{RUNS}/{run['id'] + 1}", headers=ops).status_code == 404


def test_a_past_window_end_can_be_asked_for(app, client, ops):
    a_reader_due_now(app)
    at = (floor_hour(utcnow()) - timedelta(hours=5, minutes=-20)).isoformat()
    response = client.post(RUNS, json={"frequency": "weekly", "at": at}, headers=ops)
    assert response.status_code == 201
    expected = floor_hour(utcnow()) - timedelta(hours=5)
    assert response.json["run"]["window_end"] == expected.isoformat()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"frequency": "hourly"}, "frequency"),
        ({}, "frequency"),
        ({"frequency": "daily", "dry_run": 1}, "dry_run"),
        ({"frequency": "daily", "dry_run": "yes"}, "dry_run"),
        ({"frequency": "daily", "at": "tomorrow"}, "at"),
        ({"frequency": "daily", "at": "1900-01-01T00:00:00Z"}, "at"),
        ({"frequency": "daily", "at": "0001-01-01T00:00:00+05:00"}, "at"),
        ({"frequency": "daily", "colour": "red"}, "colour"),
        ([{"frequency": "daily"}], "_schema"),
    ],
)
def test_invalid_requests_are_a_json_422_and_change_nothing(app, client, ops, body, field):
    response = client.post(RUNS, json=body, headers=ops)
    assert response.status_code == 422
    assert response.json["error"] == "Unprocessable Entity"
    assert set(response.json["errors"]) == {field}
    assert count(app, DigestRun) == 0


def test_a_window_end_in_the_future_is_refused(app, client, ops):
    a_reader_due_now(app)
    at = (utcnow() + timedelta(hours=2)).isoformat()
    response = client.post(RUNS, json={"frequency": "daily", "at": at}, headers=ops)
    assert response.status_code == 422
    [message] = response.json["errors"]["at"]
    assert message.startswith("A run cannot end in the future")
    assert count(app, DigestRun) == 0 and count(app, AuditEntry) == 0


@pytest.mark.parametrize(
    ("data", "status", "detail"),
    [
        ('{"frequency": "daily", "frequency": "weekly"}', 400, "given more than once"),
        ('{"frequency": ' * 5000 + "1" + "}" * 5000, 400, "nested too deeply"),
        ("{", 400, "not valid JSON"),
    ],
    ids=["repeated key", "deep", "broken"],
)
def test_bodies_that_are_not_json_are_a_json_400(app, client, ops, data, status, detail):
    response = client.post(RUNS, data=data, content_type="application/json", headers=ops)
    assert response.status_code == status and detail in response.json["detail"]
    assert count(app, DigestRun) == 0


def test_a_body_not_labelled_json_is_415(app, client, ops):
    response = client.post(RUNS, data="frequency=daily", headers=ops)
    assert response.status_code == 415
    assert response.json["detail"] == "Send the run as JSON, with Content-Type: application/json."


def test_runs_listed_by_frequency_and_paged(app, client, ops):
    end = floor_hour(utcnow())
    with app.app_context():
        for hours, frequency in enumerate(["daily", "weekly", "daily", "daily"]):
            db.session.add(
                DigestRun(
                    frequency=frequency,
                    window_start=end - timedelta(hours=hours + 24),
                    window_end=end - timedelta(hours=hours),
                    status="planned",
                )
            )
        db.session.commit()
    daily = rows(app, select(DigestRun.id).where(DigestRun.frequency == "daily"))
    first = client.get(f"{RUNS}?frequency=daily&limit=2", headers=ops).json
    assert [run["id"] for run in first["runs"]] == sorted(daily, reverse=True)[:2]
    assert {run["frequency"] for run in first["runs"]} == {"daily"}
    rest = client.get(
        f"{RUNS}?frequency=daily&limit=2&before_id={first['next_before_id']}", headers=ops
    ).json
    assert [run["id"] for run in rest["runs"]] == sorted(daily, reverse=True)[2:]
    assert rest["next_before_id"] is None
