"""Topics pages: list with subscriber counts, create, edit, retire, un-retire, and a preview
of what a keyword query matches. Every change is audited; bad input changes nothing."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import select

from alertsvc.models import AuditEntry, Topic, utcnow
from tests.admin.helpers import post_form
from tests.factories import count, create_article, create_subscriber, create_topic, rows


def _topics(app: Flask) -> list[tuple]:
    return rows(
        app,
        select(Topic.slug, Topic.name, Topic.description, Topic.query).order_by(Topic.slug),
    )


def _audit(app: Flask) -> list[tuple]:
    return rows(
        app,
        select(AuditEntry.actor, AuditEntry.action, AuditEntry.target, AuditEntry.details)
        .where(AuditEntry.action.like("topic.%"))
        .order_by(AuditEntry.id),
    )


def _new(client, **fields):
    data = {"slug": "", "name": "", "description": "", "query": "", "action": "save", **fields}
    return post_form(client, "/admin/topics/new", data, csrf_from="/admin/topics/new")


def test_the_list_shows_each_topic_with_live_subscribers_per_frequency(app: Flask, admin_client):
    data = create_topic(app, "data", "Data")
    create_topic(app, "cyber", "Cyber security")
    create_subscriber(app, "a@example.com", {data: "immediately"})
    create_subscriber(app, "b@example.com", {data: "weekly"})
    create_subscriber(app, "c@example.com", {data: "weekly"})
    page = admin_client.get("/admin/topics").get_data(as_text=True)
    row = page.split("Data</a>")[1].split("</tr>")[0]
    assert [cell for cell in ("1", "0", "2") if f'<td class="number">{cell}</td>' in row] == [
        "1",
        "0",
        "2",
    ]
    assert "Cyber security" in page and "Add a topic" in page


def test_an_admin_adds_a_topic_and_it_is_audited(app: Flask, admin_client):
    response = _new(admin_client, slug="open-data", name="Open data", description="Datasets.")
    assert response.status_code == 303
    page = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Topic Open data added." in page
    assert _topics(app) == [("open-data", "Open data", "Datasets.", None)]
    assert _audit(app) == [
        (
            "operator:ops@publisher.example",
            "topic.create",
            "topic open-data",
            {"name": "Open data", "query": None},
        )
    ]


def test_an_admin_adds_a_keyword_topic(app: Flask, admin_client):
    response = _new(admin_client, slug="nhs", name="NHS", query="NHS OR  health")
    assert response.status_code == 303
    assert _topics(app) == [("nhs", "NHS", "", "NHS OR  health")]


def test_bad_topics_are_refused_with_a_message_and_nothing_stored(app: Flask, admin_client):
    create_topic(app, "data", "Data")
    cases = [
        ({"slug": "Not A Slug", "name": "X"}, "Slug &#39;Not A Slug&#39; must be lower-case"),
        ({"slug": "data", "name": "Again"}, "A topic with slug &#39;data&#39; already exists"),
        ({"slug": "fine", "name": ""}, "Enter a name"),
        (
            {"slug": "fine", "name": " data "},
            "Name &#39;data&#39; is taken by topic &#39;data&#39;",
        ),
        ({"slug": "fine", "name": "Two\nlines"}, "Name must not contain line breaks"),
        ({"slug": "fine", "name": "x" * 5000}, "The name must be 200 characters or fewer"),
        ({"slug": "fine", "name": "Q", "query": '"open'}, "a quote is not closed"),
        ({"slug": "fine", "name": "Q", "query": "OR"}, "OR must stand between"),
        ({"slug": "fine", "name": "D", "description": "d" * 5000}, "1000 characters or fewer"),
    ]
    for fields, message in cases:
        response = _new(admin_client, **fields)
        page = response.get_data(as_text=True)
        assert response.status_code == 400, fields
        assert "There is a problem" in page and message in page, (fields, page[:3000])
    assert _topics(app) == [("data", "Data", "", None)]
    assert _audit(app) == []


def test_preview_shows_recent_matching_articles_and_saves_nothing(app: Flask, admin_client):
    now = utcnow()
    create_article(app, "NHS trust moves to the cloud", [], now - timedelta(days=1))
    create_article(app, "Council data strategy", [], now - timedelta(days=2))
    create_article(app, "Old NHS news", [], now - timedelta(days=45))
    response = _new(admin_client, slug="nhs", name="NHS", query="NHS", action="preview")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "NHS trust moves to the cloud" in page
    assert "Council data strategy" not in page and "Old NHS news" not in page
    assert 'value="nhs"' in page, "the form keeps what was typed"
    assert _topics(app) == []


def test_preview_without_a_query_or_with_a_bad_one_says_why(app: Flask, admin_client):
    empty = _new(admin_client, slug="nhs", name="NHS", query="", action="preview")
    assert "Enter a query to preview" in empty.get_data(as_text=True)
    bad = _new(admin_client, slug="nhs", name="NHS", query='"x', action="preview")
    assert "A quote is not closed" in bad.get_data(as_text=True)
    _new(admin_client, slug="nhs", name="NHS", query="NHS")
    [topic_id] = rows(app, select(Topic.id))
    path = f"/admin/topics/{topic_id}"
    for query, message in (("", "Enter a query to preview"), ('"x', "A quote is not closed")):
        response = post_form(
            admin_client, path, {"name": "NHS", "query": query, "action": "preview"}, csrf_from=path
        )
        assert message in response.get_data(as_text=True)
    assert _topics(app) == [("nhs", "NHS", "", "NHS")]


def test_edit_changes_name_description_and_query_but_not_the_slug(app: Flask, admin_client):
    _new(admin_client, slug="nhs", name="NHS", query="NHS")
    [topic_id] = rows(app, select(Topic.id))
    path = f"/admin/topics/{topic_id}"
    response = post_form(
        admin_client,
        path,
        {"slug": "other", "name": "NHS and care", "description": "Health.", "query": "NHS OR care"},
        csrf_from=path,
    )
    assert response.status_code == 303
    assert _topics(app) == [("nhs", "NHS and care", "Health.", "NHS OR care")]
    assert _audit(app)[-1][1:] == (
        "topic.update",
        "topic nhs",
        {"name": "NHS and care", "description": "Health.", "query": "NHS OR care"},
    )
    unchanged = {"name": "NHS and care", "description": "Health.", "query": "NHS OR care"}
    again = post_form(admin_client, path, unchanged, csrf_from=path)
    assert "Nothing was changed." in admin_client.get(again.headers["Location"]).get_data(
        as_text=True
    )
    assert [entry[1] for entry in _audit(app)] == ["topic.create", "topic.update"]
    bad = post_form(admin_client, path, {"name": "NHS", "query": '"x'}, csrf_from=path)
    assert bad.status_code == 400 and "a quote is not closed" in bad.get_data(as_text=True)
    assert _topics(app) == [("nhs", "NHS and care", "Health.", "NHS OR care")]


def test_an_ordinary_topic_cannot_be_given_a_query(app: Flask, admin_client):
    topic_id = create_topic(app, "data", "Data")
    path = f"/admin/topics/{topic_id}"
    response = post_form(admin_client, path, {"name": "Data", "query": "data"}, csrf_from=path)
    assert response.status_code == 400
    assert "Only a keyword topic has a query" in response.get_data(as_text=True)
    assert _topics(app) == [("data", "Data", "", None)]


def test_retire_and_offer_again_are_audited(app: Flask, admin_client):
    topic_id = create_topic(app, "data", "Data")
    response = post_form(admin_client, f"/admin/topics/{topic_id}/retire")
    assert response.status_code == 303
    page = admin_client.get(f"/admin/topics/{topic_id}").get_data(as_text=True)
    assert "is retired" in page and "Offer this topic again" in page
    assert count(app, Topic, Topic.retired_at.is_not(None)) == 1
    post_form(admin_client, f"/admin/topics/{topic_id}/retire")  # again: no second entry
    post_form(admin_client, f"/admin/topics/{topic_id}/unretire")
    assert count(app, Topic, Topic.retired_at.is_not(None)) == 0
    assert [entry[1] for entry in _audit(app)] == ["topic.retire", "topic.unretire"]


def test_unknown_topics_are_404_and_a_forged_form_changes_nothing(app: Flask, admin_client):
    assert admin_client.get("/admin/topics/999").status_code == 404
    assert post_form(admin_client, "/admin/topics/999/retire").status_code == 404
    topic_id = create_topic(app, "data", "Data")
    no_token = admin_client.post(f"/admin/topics/{topic_id}/retire")
    assert no_token.status_code == 400
    assert count(app, Topic, Topic.retired_at.is_not(None)) == 0


def test_a_viewer_sees_topics_but_gets_no_forms(app: Flask, viewer_client):
    topic_id = create_topic(app, "data", "Data")
    assert viewer_client.get("/admin/topics").status_code == 200
    page = viewer_client.get(f"/admin/topics/{topic_id}").get_data(as_text=True)
    assert "Data" in page and "Retire this topic" not in page
    assert post_form(viewer_client, f"/admin/topics/{topic_id}/retire").status_code == 403
    assert count(app, Topic, Topic.retired_at.is_not(None)) == 0
    # The add page says why it has no form, instead of a heading over nothing.
    new = viewer_client.get("/admin/topics/new").get_data(as_text=True)
    assert "Only an admin can add a topic. You are signed in as a viewer." in new
