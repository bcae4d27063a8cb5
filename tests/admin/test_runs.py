"""The runs pages: list, live progress, run now (dry run first), retries."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from alertsvc.delivery.suppressions import SuppressionSource, suppress
from alertsvc.digests.schedule import floor_hour
from alertsvc.extensions import db
from alertsvc.models import (
    AuditEntry,
    DigestRun,
    OutboxEmail,
    Subscriber,
    SuppressionReason,
    utcnow,
)
from tests.admin.helpers import csrf_token, post_form
from tests.digests.helpers import digest, start_subscriptions_at
from tests.factories import count, create_article, create_subscriber, rows, seed_topics


def _due_now(app, email="reader@example.com", frequency="daily", **fields):
    """A subscriber in UTC whose daily hour is the hour that has just ended, with one
    article waiting: the run ending now sends them one digest."""
    topics = seed_topics(app)
    end = floor_hour(utcnow())
    subscriber = create_subscriber(
        app,
        email,
        {topics["data"]: frequency},
        timezone="UTC",
        daily_hour=end.hour,
        weekly_hour=end.hour,
        weekly_day=end.weekday(),
        **fields,
    )
    start_subscriptions_at(app, subscriber, end - timedelta(days=1))
    create_article(app, "Open data strategy", [topics["data"]], end - timedelta(hours=3))
    return subscriber, end


def _audit(app, action):
    return rows(
        app, select(AuditEntry.target, AuditEntry.details).where(AuditEntry.action == action)
    )


def test_runs_list_shows_counts_from_the_outbox(app, admin_client):
    _subscriber, end = _due_now(app)
    create_subscriber(app, "second@example.com")  # not due
    result = digest(app, "daily", end)
    with app.app_context():
        db.session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.run_id == result.run_id)
            .values(status="failed", last_error="boom")
        )
        db.session.commit()

    page = admin_client.get("/admin/runs")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f"Run {result.run_id}" in text
    assert "daily" in text and "sent, some failed" in text
    assert '<td class="number">1</td>' in text  # audience and failed
    assert 'aria-current="page"' in text and ">Runs</a>" in text


def test_runs_list_pages_back(app, admin_client):
    with app.app_context():
        base = floor_hour(utcnow()) - timedelta(days=10)
        for hour in range(55):
            db.session.add(
                DigestRun(
                    frequency="daily",
                    window_start=base + timedelta(hours=hour),
                    window_end=base + timedelta(hours=hour),
                    status="planned",
                )
            )
        db.session.commit()
        ids = sorted(db.session.scalars(select(DigestRun.id)))
    first = admin_client.get("/admin/runs").get_data(as_text=True)
    assert f"Run {ids[-1]}<" in first and f"Run {ids[4]}<" not in first
    assert f"before={ids[5]}" in first
    older = admin_client.get(f"/admin/runs?before={ids[5]}").get_data(as_text=True)
    assert f"Run {ids[4]}<" in older and f"Run {ids[5]}<" not in older


def test_run_page_refreshes_while_emails_are_queued_and_stops_when_sent(app, admin_client, mailbox):
    _subscriber, end = _due_now(app)
    result = digest(app, "daily", end)
    page = admin_client.get(f"/admin/runs/{result.run_id}").get_data(as_text=True)
    assert "1</span> waiting to be sent" in page
    assert "http-equiv" not in page, "no reloading unless the operator asks for it"
    assert f'href="/admin/runs/{result.run_id}?live=1"' in page
    page = admin_client.get(f"/admin/runs/{result.run_id}?live=1").get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="5">' in page
    assert "Stop reloading" in page

    mailbox.deliver()
    page = admin_client.get(f"/admin/runs/{result.run_id}?live=1").get_data(as_text=True)
    assert "http-equiv" not in page, "a run that is done stops reloading"
    assert "1</span> sent" in page and ">done<" in page


def test_unknown_run_is_a_404_page(admin_client):
    response = admin_client.get("/admin/runs/999999")
    assert response.status_code == 404
    assert "<h1" in response.get_data(as_text=True)


def test_run_now_dry_run_first_then_for_real(app, admin_client, mailbox):
    _subscriber, end = _due_now(app)
    form = admin_client.get("/admin/runs/new").get_data(as_text=True)
    assert "Window end" in form

    preview = post_form(
        admin_client,
        "/admin/runs/new",
        {"frequency": "daily", "at": ""},
        csrf_from="/admin/runs/new",
    )
    text = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert "Dry run: daily digest ending" in text
    assert "1</span> emails would be queued" in text
    assert count(app, DigestRun) == 0, "a dry run writes nothing"
    assert count(app, OutboxEmail) == 0

    hidden_at = f"{end:%Y-%m-%dT%H:%M}"
    assert f'value="{hidden_at}"' in text
    token = csrf_token(admin_client, "/admin/runs/new")
    started = admin_client.post(
        "/admin/runs/start", data={"frequency": "daily", "at": hidden_at, "csrf_token": token}
    )
    assert started.status_code == 302
    [run] = rows(app, select(DigestRun))
    assert (run.trigger, run.status, run.email_count) == ("operator", "planned", 1)
    assert started.headers["Location"].endswith(f"/admin/runs/{run.id}")
    assert [message["To"] for message in mailbox.deliver()] == ["reader@example.com"]
    [(target, details)] = _audit(app, "run.trigger")
    assert target == f"run {run.id}"
    assert details["emails"] == 1 and details["frequency"] == "daily"

    again = post_form(
        admin_client, "/admin/runs/new", {"frequency": "daily", "at": ""}, csrf_from="/admin/runs"
    )
    assert f"This run was already planned (run {run.id})" in again.get_data(as_text=True)


def test_run_start_with_an_empty_window_end_runs_the_last_hour(app, admin_client):
    """As the run-now form does: an empty window end is the last whole hour."""
    _subscriber, end = _due_now(app)
    token = csrf_token(admin_client, "/admin/runs/new")
    started = admin_client.post(
        "/admin/runs/start", data={"frequency": "daily", "at": "", "csrf_token": token}
    )
    assert started.status_code == 302
    [run] = rows(app, select(DigestRun))
    assert (run.window_end, run.status, run.email_count) == (end, "planned", 1)
    assert len(_audit(app, "run.trigger")) == 1


def test_run_now_refuses_a_window_end_in_the_future(app, admin_client):
    later = floor_hour(utcnow()) + timedelta(hours=2)
    response = post_form(
        admin_client,
        "/admin/runs/new",
        {"frequency": "daily", "at": f"{later:%Y-%m-%dT%H:%M}"},
        csrf_from="/admin/runs/new",
    )
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "There is a problem" in text and "A run cannot end in the future" in text
    assert f"{later:%Y-%m-%d %H:%M} UTC is later than now" in text
    # The confirm step checks again: a hand-made POST is refused the same way.
    token = csrf_token(admin_client, "/admin/runs/new")
    response = admin_client.post(
        "/admin/runs/start",
        data={"frequency": "weekly", "at": f"{later:%Y-%m-%dT%H:%M}", "csrf_token": token},
    )
    assert response.status_code == 400
    assert "cannot end in the future" in response.get_data(as_text=True)
    assert count(app, DigestRun) == 0
    assert count(app, AuditEntry, AuditEntry.action == "run.trigger") == 0


def test_run_now_refuses_nonsense(admin_client):
    response = post_form(
        admin_client,
        "/admin/runs/new",
        {"frequency": "hourly", "at": "tomorrow"},
        csrf_from="/admin/runs/new",
    )
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Not a valid choice" in text or "Choose daily or weekly" in text
    assert "like 2026-11-25T07:00" in text


def test_viewers_see_runs_but_cannot_run_or_retry(app, viewer_client):
    assert viewer_client.get("/admin/runs").status_code == 200
    assert "Run a digest now" not in viewer_client.get("/admin/runs").get_data(as_text=True)
    token = csrf_token(viewer_client, "/admin/runs")
    for path in ["/admin/runs/new", "/admin/runs/start", "/admin/runs/1/retry-failed"]:
        response = viewer_client.post(path, data={"csrf_token": token, "frequency": "daily"})
        assert response.status_code == 403, path
    assert count(app, DigestRun) == 0


def test_a_viewer_who_opens_run_now_gets_no_form_to_fill(viewer_client, admin_client):
    """The page says a viewer cannot run a digest, instead of a form whose every submit
    would be refused."""
    page = viewer_client.get("/admin/runs/new").get_data(as_text=True)
    assert "Only an admin can run a digest" in page
    assert 'action="/admin/runs/new"' not in page
    assert 'action="/admin/runs/new"' in admin_client.get("/admin/runs/new").get_data(as_text=True)


def test_retry_failed_emails_requeues_failed_only(app, admin_client, mailbox):
    topics = seed_topics(app)
    _subscriber, end = _due_now(app)
    second = create_subscriber(
        app, "two@example.com", {topics["data"]: "daily"}, timezone="UTC", daily_hour=end.hour
    )
    third = create_subscriber(
        app, "three@example.com", {topics["data"]: "daily"}, timezone="UTC", daily_hour=end.hour
    )
    for subscriber in (second, third):
        start_subscriptions_at(app, subscriber, end - timedelta(days=1))
    result = digest(app, "daily", end)
    assert result.emails == 3
    with app.app_context():
        ids = sorted(db.session.scalars(select(OutboxEmail.id)))
        db.session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.id.in_(ids[:2]))
            .values(status="failed", attempts=5, last_error="SES said no")
        )
        db.session.execute(
            update(OutboxEmail).where(OutboxEmail.id == ids[2]).values(status="suppressed")
        )
        db.session.commit()

    response = post_form(
        admin_client, f"/admin/runs/{result.run_id}/retry-failed", csrf_from="/admin/runs"
    )
    assert response.status_code == 302
    states = rows(app, select(OutboxEmail.status, OutboxEmail.attempts).order_by(OutboxEmail.id))
    assert states == [("queued", 0), ("queued", 0), ("suppressed", 0)]
    [(target, details)] = _audit(app, "run.retry_failed")
    assert (target, details) == (f"run {result.run_id}", {"emails": 2})
    page = admin_client.get(f"/admin/runs/{result.run_id}").get_data(as_text=True)
    assert "2 failed emails queued again." in page
    assert len(mailbox.deliver()) == 2


def test_retry_failed_leaves_erased_subscribers_alone(app, admin_client):
    subscriber, end = _due_now(app)
    result = digest(app, "daily", end)
    with app.app_context():
        db.session.execute(update(OutboxEmail).values(status="failed"))
        db.session.get(Subscriber, subscriber).erased_at = utcnow()
        db.session.commit()
    post_form(admin_client, f"/admin/runs/{result.run_id}/retry-failed", csrf_from="/admin/runs")
    assert rows(app, select(OutboxEmail.status)) == ["failed"]
    assert count(app, AuditEntry, AuditEntry.action == "run.retry_failed") == 0


def test_retry_failed_leaves_addresses_suppressed_since(app, admin_client):
    """An address suppressed after its email failed is not queued again, nor counted."""
    topics = seed_topics(app)
    first, end = _due_now(app)
    second = create_subscriber(
        app, "two@example.com", {topics["data"]: "daily"}, timezone="UTC", daily_hour=end.hour
    )
    start_subscriptions_at(app, second, end - timedelta(days=1))
    result = digest(app, "daily", end)
    with app.app_context():
        address = select(Subscriber.email).where(Subscriber.id == OutboxEmail.subscriber_id)
        db.session.execute(
            update(OutboxEmail).values(
                status="failed", last_error="SES said no", to_address=address.scalar_subquery()
            )
        )
        suppress(
            "two@example.com", SuppressionReason.COMPLAINT, SuppressionSource.SES, None, utcnow()
        )
        db.session.commit()
    post_form(admin_client, f"/admin/runs/{result.run_id}/retry-failed", csrf_from="/admin/runs")
    states = rows(app, select(OutboxEmail.subscriber_id, OutboxEmail.status))
    assert sorted(states) == [(first, "queued"), (second, "failed")]
    [(_target, details)] = _audit(app, "run.retry_failed")
    assert details == {"emails": 1}
    page = admin_client.get(f"/admin/runs/{result.run_id}").get_data(as_text=True)
    assert "1 failed email queued again." in page


def test_retry_a_parked_run(app, admin_client):
    _subscriber, end = _due_now(app)
    with app.app_context():
        db.session.add(
            DigestRun(
                frequency="daily",
                window_start=end,
                window_end=end,
                status="planning",
                attempts=5,
                last_error="database went away",
                parked_at=utcnow(),
            )
        )
        db.session.commit()
        run_id = db.session.scalar(select(DigestRun.id))
    listed = admin_client.get("/admin/runs").get_data(as_text=True)
    assert ">parked<" in listed and "5 failed attempts" in listed
    assert "database went away" in listed
    page = admin_client.get(f"/admin/runs/{run_id}").get_data(as_text=True)
    assert ">parked<" in page and "database went away" in page
    assert "Retry planning run" in page
    assert "Watch its progress" not in page, "a parked run does not move by itself"

    response = post_form(admin_client, f"/admin/runs/{run_id}/retry", csrf_from="/admin/runs")
    assert response.status_code == 302
    [run] = rows(app, select(DigestRun))
    assert (run.status, run.parked_at, run.email_count) == ("planned", None, 1)
    [(target, details)] = _audit(app, "run.retry")
    assert target == f"run {run_id}" and details["emails"] == 1


def test_changes_need_the_csrf_token(app, admin_client):
    _subscriber, _end = _due_now(app)
    response = admin_client.post("/admin/runs/start", data={"frequency": "daily", "at": "x"})
    assert response.status_code == 400
    assert count(app, DigestRun) == 0


MY_PAGES = ("/admin/runs", "/admin/subscribers", "/admin/audit")


def _my_requests(app):
    adapter = app.url_map.bind("localhost")
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(MY_PAGES):
            values = {name: "daily" if name == "frequency" else 1 for name in rule.arguments}
            path = adapter.build(rule.endpoint, values)
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                yield method, path


def test_runs_subscribers_and_audit_pages_refuse_strangers_and_viewers_changes(
    app, client, viewer_client
):
    """Every route of these pages, from the URL map: anonymous users are sent to sign in
    (or refused), viewers may look but not change."""
    requests = list(_my_requests(app))
    assert ("POST", "/admin/subscribers/1/erase") in requests
    token = csrf_token(viewer_client, "/admin/runs")
    for method, path in requests:
        anonymous = client.open(path, method=method)
        assert anonymous.status_code in (302, 400, 403), (method, path)  # 400: no CSRF token
        if method == "GET":
            assert "/admin/login" in anonymous.headers["Location"]
        else:
            viewer = viewer_client.open(path, method=method, data={"csrf_token": token})
            assert viewer.status_code == 403, (method, path)
    assert count(app, AuditEntry, AuditEntry.action != "operator.sign_in") == 0
