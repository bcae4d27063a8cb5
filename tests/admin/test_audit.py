"""The audit log page: newest first, filtered by action, paged, and read-only."""

from __future__ import annotations

from sqlalchemy import select

from alertsvc.audit import Actor, record_audit, set_actor
from alertsvc.extensions import db
from alertsvc.models import AuditEntry
from tests.admin.helpers import csrf_token
from tests.factories import count, rows


def _entries(app, how_many, action="topic.create"):
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "192.0.2.7"}):
        set_actor(Actor("operator:ann@publisher.example", None))
        for n in range(how_many):
            record_audit(action, f"{action.split('.')[0]} t{n}", {"name": f"Topic {n}"})
        db.session.commit()


def test_newest_first_with_who_what_and_from_where(app, admin_client):
    _entries(app, 2)
    _entries(app, 1, action="feed.poll")
    text = admin_client.get("/admin/audit").get_data(as_text=True)
    assert text.index("feed t0") < text.index("topic t1") < text.index("topic t0")
    assert "operator:ann@publisher.example" in text
    assert "192.0.2.7" in text
    assert "name: Topic 1" in text
    # Signing in is recorded too, by the same page's own rule.
    assert "operator.sign_in" in text


def test_filter_by_action(app, admin_client):
    _entries(app, 2)
    _entries(app, 1, action="feed.poll")
    text = admin_client.get("/admin/audit?action=feed.poll").get_data(as_text=True)
    assert "<td>feed.poll</td>" in text and "<td>topic.create</td>" not in text
    assert '<option value="topic.create">' in text


def test_pages_back_with_before_id(app, admin_client):
    _entries(app, 60)
    ids = rows(app, select(AuditEntry.id).where(AuditEntry.action == "topic.create"))
    first = admin_client.get("/admin/audit?action=topic.create").get_data(as_text=True)
    assert "topic t59<" in first and "topic t9<" not in first
    older = admin_client.get(f"/admin/audit?action=topic.create&before={sorted(ids)[10]}").get_data(
        as_text=True
    )
    assert "topic t9<" in older and "topic t10<" not in older


def test_viewers_can_read_it(app, viewer_client):
    assert viewer_client.get("/admin/audit").status_code == 200


def test_no_route_changes_or_deletes_entries(app, admin_client):
    """Enumerated from the URL map: nothing under /admin/audit takes anything but a read."""
    audit_rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/admin/audit")]
    assert audit_rules, "the audit page exists"
    for rule in audit_rules:
        assert rule.methods <= {"GET", "HEAD", "OPTIONS"}, rule
    _entries(app, 1)
    before = count(app, AuditEntry)
    token = csrf_token(admin_client, "/admin/audit")
    for method in ("post", "put", "patch", "delete"):
        response = getattr(admin_client, method)("/admin/audit", data={"csrf_token": token})
        assert response.status_code == 405
    assert count(app, AuditEntry) == before


def test_a_field_without_a_value_shows_empty_not_none(app, admin_client):
    """A topic created without a query: its entry says ``query:`` and nothing more."""
    with app.test_request_context("/"):
        set_actor(Actor("operator:ann@publisher.example", None))
        record_audit("topic.create", "topic t0", {"name": "Topic 0", "query": None})
        db.session.commit()
    text = admin_client.get("/admin/audit").get_data(as_text=True)
    assert "<li>query: </li>" in text and "None" not in text
