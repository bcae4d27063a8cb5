"""The subscribers pages: search, a subscriber's page, their next digest, export, erase."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import JSON, String, Text, cast, func, or_, select

from alertsvc.addresses import address_hash
from alertsvc.delivery.suppressions import SuppressionSource, suppress
from alertsvc.digests.preview import next_run_end, preview_next_digest
from alertsvc.extensions import db
from alertsvc.models import (
    AlertDelivery,
    AuditEntry,
    DeliveryEvent,
    DigestDelivery,
    DigestRun,
    Frequency,
    OutboxEmail,
    SignupRequest,
    Subscriber,
    Subscription,
    Suppression,
    SuppressionReason,
    utcnow,
)
from alertsvc.subscriptions.services import Schedule, sign_up
from alertsvc.tokens import InvalidToken, TokenPurpose, read_token
from tests.admin.helpers import csrf_token, post_form
from tests.digests.helpers import at, digest, start_subscriptions_at
from tests.factories import count, create_article, create_subscriber, rows, seed_topics
from tests.mail import html_part, text_part

ADDRESS = "Jane.Doe@Example.com"
STORED = "jane.doe@example.com"


def _reader(app, email=STORED, **fields):
    topics = seed_topics(app)
    subscriber = create_subscriber(
        app,
        email,
        {topics["data"]: "daily", topics["cyber-security"]: "weekly"},
        timezone="Europe/London",
        daily_hour=7,
        **fields,
    )
    return subscriber, topics


# -- search ----------------------------------------------------------------------------------


def test_find_by_exact_address_or_prefix(app, admin_client):
    _reader(app)
    create_subscriber(app, "jane.smith@example.com")
    create_subscriber(app, "janet@example.org")
    create_subscriber(app, "jane_x@example.com")

    exact = admin_client.get("/admin/subscribers?q=" + ADDRESS).get_data(as_text=True)
    assert STORED in exact and "jane.smith" not in exact

    prefix = admin_client.get("/admin/subscribers?q=jane.").get_data(as_text=True)
    assert STORED in prefix and "jane.smith@example.com" in prefix
    assert "janet@" not in prefix

    # "_" and "%" are letters here, not wildcards.
    underscore = admin_client.get("/admin/subscribers?q=jane_").get_data(as_text=True)
    assert "jane_x@example.com" in underscore and "jane.smith" not in underscore
    percent = admin_client.get("/admin/subscribers?q=%25").get_data(as_text=True)
    assert "No subscriber" in percent

    empty = admin_client.get("/admin/subscribers?q=+")
    assert empty.status_code == 400
    assert "There is a problem" in empty.get_data(as_text=True)


def test_an_address_with_a_unicode_domain_is_found_however_its_start_is_typed(app, admin_client):
    """Addresses are stored with the domain in ASCII; an operator types the reader's
    Unicode. An unfinished label (``exäm``) can only be looked for loosely in ASCII
    (``xn--exm``, which ``exmö`` also starts with), so what is shown is checked again."""
    create_subscriber(app, "jane@xn--exmple-cua.org")  # jane@exämple.org
    create_subscriber(app, "jane@xn--exm-una.org")  # jane@exmö.org

    for typed in ("jane@exä", "JANE@EXÄMPLE.", "jane@exämple.org", "jane@xn--exmple"):
        text = admin_client.get("/admin/subscribers?q=" + typed).get_data(as_text=True)
        assert "jane@xn--exmple-cua.org (jane@exämple.org)" in text, typed
        assert "xn--exm-una" not in text, typed
    text = admin_client.get("/admin/subscribers?q=jane@exmö").get_data(as_text=True)
    assert "jane@xn--exm-una.org (jane@exmö.org)" in text and "exmple" not in text


def test_search_is_bounded(app, admin_client):
    with app.app_context():
        db.session.add_all(Subscriber(email=f"bulk{n:03}@example.com") for n in range(60))
        db.session.commit()
    text = admin_client.get("/admin/subscribers?q=bulk").get_data(as_text=True)
    assert text.count("/admin/subscribers/") == 50
    assert "type more of the address" in text


# -- the subscriber's page -------------------------------------------------------------------


def test_subscriber_page_shows_history_requests_emails_and_suppression(app, admin_client):
    subscriber, topics = _reader(app)
    with app.app_context():
        db.session.get(Subscriber, subscriber).subscriptions[0].ended_at = utcnow()
        db.session.get(Subscriber, subscriber).subscriptions[0].ended_reason = "unsubscribed"
        db.session.add(
            SignupRequest(
                subscriber_id=subscriber,
                topic_ids=[topics["data"]],
                frequency="daily",
                timezone="Europe/London",
                daily_hour=7,
                weekly_day=0,
                weekly_hour=7,
            )
        )
        db.session.add(
            OutboxEmail(
                template="manage_link",
                to_address=STORED,
                subject="Manage your email alerts",
                subscriber_id=subscriber,
                status="sent",
                provider_message_id="ses-1",
            )
        )
        db.session.flush()
        outbox_id = db.session.scalar(select(OutboxEmail.id))
        db.session.add(
            DeliveryEvent(
                kind="permanent_bounce",
                email=STORED,
                outbox_id=outbox_id,
                occurred_at=utcnow(),
                detail="Permanent General",
            )
        )
        suppress(STORED, SuppressionReason.BOUNCE, SuppressionSource.SES, "bounced", utcnow())
        db.session.commit()

    text = admin_client.get(f"/admin/subscribers/{subscriber}").get_data(as_text=True)
    assert STORED in text and ">confirmed<" in text
    assert "07:00 (Europe/London)" in text
    assert "unsubscribed" in text and ">live<" in text
    assert "Manage your email alerts" in text and "permanent bounce" in text
    assert "yes: bounce" in text
    assert "Preview their next daily digest" not in text, "their daily subscription ended"
    assert "Preview their next weekly digest" in text
    assert admin_client.get("/admin/subscribers/999999").status_code == 404


# -- the next digest -------------------------------------------------------------------------

# Signed links differ by when they were signed, and the preview carries placeholders in
# their place: compare everything else.
_SIGNED = re.compile(r"/(manage|unsubscribe)/[A-Za-z0-9._-]+")
_LINK_TOKEN = re.compile(r"/(?:manage|unsubscribe)/([^\s\"'<>&/]+)")


def _unsigned(text: str) -> str:
    return _SIGNED.sub(r"/\1/SIGNED", text)


def test_next_run_end_follows_the_subscribers_hour_and_pause(app):
    with app.app_context():
        subscriber = Subscriber(
            email="x@example.com", timezone="Europe/London", daily_hour=7, weekly_day=2
        )
        subscriber.weekly_hour = 9
        now = at("2026-11-24T20:00")  # a Tuesday, GMT
        assert next_run_end(subscriber, "daily", now) == at("2026-11-25T07:00")
        assert next_run_end(subscriber, "daily", at("2026-11-25T06:30")) == at("2026-11-25T07:00")
        assert next_run_end(subscriber, "weekly", now) == at("2026-11-25T09:00")
        subscriber.pause_ends_at = at("2026-11-28T00:00")
        assert next_run_end(subscriber, "daily", now) == at("2026-11-28T07:00")
        subscriber.timezone = "Asia/Kolkata"  # 07:00 IST is 01:30 UTC: the 02:00 run
        subscriber.pause_ends_at = None
        assert next_run_end(subscriber, "daily", now) == at("2026-11-25T02:00")


def test_preview_is_the_digest_the_next_run_sends(app, mailbox):
    """Byte for byte, links aside: the preview, then the run itself, sent by the worker."""
    subscriber, topics = _reader(app)
    other = create_subscriber(
        app, "other@example.com", {topics["data"]: "daily"}, timezone="Europe/London"
    )
    for who in (subscriber, other):
        start_subscriptions_at(app, who, at("2026-11-24T07:00"))
    create_article(
        app,
        "Councils hit by ransomware",
        [topics["data"], topics["cyber-security"]],
        at("2026-11-24T12:00"),
        summary="<p>Systems <b>down</b> &amp; restored.</p>",
    )
    create_article(app, "Open data strategy", [topics["data"]], at("2026-11-24T15:00"))
    now = at("2026-11-24T20:00")
    with app.app_context():
        preview = preview_next_digest(db.session.get(Subscriber, subscriber), "daily", now)
        db.session.rollback()
        html, text, subject, to = preview.html, preview.text, preview.subject, preview.message["To"]
    assert preview.window_end == at("2026-11-25T07:00")
    assert count(app, DigestRun) == 0 and count(app, OutboxEmail) == 0, "nothing written"

    result = digest(app, "daily", preview.window_end)
    assert result.emails == 2
    sent = [m for m in mailbox.deliver() if m["To"] == STORED]
    assert len(sent) == 1
    [message] = sent
    assert (subject, to) == (message["Subject"], message["To"])
    assert "/unsubscribe/" in text and "/manage/" in html
    assert "/manage/PREVIEW" in html and "/manage/PREVIEW" not in html_part(message)
    assert _unsigned(text) == _unsigned(text_part(message))
    assert _unsigned(html) == _unsigned(html_part(message))


def test_preview_pages(app, admin_client):
    subscriber, topics = _reader(app)
    start_subscriptions_at(app, subscriber, utcnow() - timedelta(days=2))
    create_article(app, "Open data strategy", [topics["data"]], utcnow() - timedelta(hours=1))
    page = admin_client.get(f"/admin/subscribers/{subscriber}/preview/daily")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Daily email alert: 1 new article on Data" in text
    assert "<pre" in text and "Open data strategy" in text
    assert f'src="/admin/subscribers/{subscriber}/preview/daily/email.html"' in text

    frame = admin_client.get(f"/admin/subscribers/{subscriber}/preview/daily/email.html")
    assert frame.status_code == 200
    assert "Open data strategy" in frame.get_data(as_text=True)
    assert "sandbox" in frame.headers["Content-Security-Policy"]
    assert "script-src" not in frame.headers["Content-Security-Policy"]
    assert frame.headers["X-Frame-Options"] == "SAMEORIGIN"

    weekly = admin_client.get(f"/admin/subscribers/{subscriber}/preview/weekly")
    assert "Nothing new in their topics" in weekly.get_data(as_text=True)
    assert admin_client.get(f"/admin/subscribers/{subscriber}/preview/hourly").status_code == 404
    assert count(app, DigestRun) == 0 and count(app, OutboxEmail) == 0


def test_preview_links_are_inert(app, viewer_client, client):
    """A viewer reading the preview gets no link that manages, exports or erases them."""
    subscriber, topics = _reader(app)
    start_subscriptions_at(app, subscriber, utcnow() - timedelta(days=2))
    create_article(app, "Open data strategy", [topics["data"]], utcnow() - timedelta(hours=1))
    page = viewer_client.get(f"/admin/subscribers/{subscriber}/preview/daily")
    frame = viewer_client.get(f"/admin/subscribers/{subscriber}/preview/daily/email.html")
    assert page.status_code == frame.status_code == 200
    with app.app_context():
        preview = preview_next_digest(db.session.get(Subscriber, subscriber), "daily")
        list_unsubscribe = preview.message["List-Unsubscribe"]
        db.session.rollback()
    shown = page.get_data(as_text=True) + frame.get_data(as_text=True) + list_unsubscribe
    tokens = set(_LINK_TOKEN.findall(shown))
    assert tokens, "the preview shows its links"
    with app.test_request_context():
        for token in tokens:
            for purpose in TokenPurpose:
                with pytest.raises(InvalidToken):
                    read_token(purpose, token)
    for link in set(re.findall(r"/(?:manage|unsubscribe)/[^\s\"'<>&]+", shown)):
        followed = client.get(link)
        assert followed.status_code != 200, link
        assert "<h1>Manage your email alerts</h1>" not in followed.get_data(as_text=True)
        assert STORED not in followed.get_data(as_text=True)


# -- export and erase ------------------------------------------------------------------------


def _everything_about(app, email=STORED):
    """A subscriber with every kind of row that can hold their address."""
    topics = seed_topics(app)
    with app.app_context():
        sign_up(
            email, [_topic(topics, "data")], Frequency.DAILY, Schedule("Europe/London", 7, 0, 7)
        )
        db.session.commit()
        subscriber = db.session.scalar(select(Subscriber).where(Subscriber.email == email))
        subscriber.confirmed_at = utcnow()
        db.session.add(
            Subscription(subscriber_id=subscriber.id, topic_id=topics["data"], frequency="daily")
        )
        db.session.add(
            OutboxEmail(
                template="manage_link",
                to_address=email,
                subject="Manage your email alerts",
                subscriber_id=subscriber.id,
                status="sent",
                provider_message_id="ses-9",
                context={"note": email},
            )
        )
        db.session.add(
            OutboxEmail(
                template="manage_link",
                to_address=email,
                subject="Manage your email alerts",
                subscriber_id=subscriber.id,
                status="queued",
            )
        )
        db.session.flush()
        sent_id = db.session.scalar(
            select(OutboxEmail.id).where(OutboxEmail.provider_message_id == "ses-9")
        )
        db.session.add(
            DeliveryEvent(
                kind="complaint",
                email=email,
                outbox_id=sent_id,
                occurred_at=utcnow(),
                detail="abuse",
            )
        )
        suppress(email, SuppressionReason.COMPLAINT, SuppressionSource.SES, "complained", utcnow())
        db.session.commit()
        return subscriber.id


def _topic(topics, slug):
    from alertsvc.models import Topic

    return db.session.get(Topic, topics[slug])


def test_export_contains_everything_stored_about_them(app, admin_client):
    subscriber = _everything_about(app)
    response = admin_client.get(f"/admin/subscribers/{subscriber}/export.json")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    data = json.loads(response.get_data(as_text=True))
    assert data["email"] == STORED and data["status"] == "confirmed"
    assert [s["topic"] for s in data["subscriptions"]] == ["data"]
    assert len(data["signup_requests"]) == 1
    statuses = sorted(e["status"] for e in data["emails"])
    assert statuses == ["queued", "queued", "sent"]  # the confirmation, a link, one sent
    [sent] = [e for e in data["emails"] if e["status"] == "sent"]
    assert sent["events"][0]["kind"] == "complaint"
    assert data["suppression"]["reason"] == "complaint"
    [target] = rows(app, select(AuditEntry.target).where(AuditEntry.action == "subscriber.export"))
    assert target == f"subscriber {subscriber}"


def _with_ledgers_and_loose_events(app, subscriber, email=STORED):
    """What else is stored about them: the digest and alert ledgers (a digest with nothing
    new sends no email; an alert past the daily cap is carried over, not sent), and what SES
    reported about their address that is tied to none of their emails (a bounce whose email
    row the retention purge has deleted, or one SES reported for an unknown message)."""
    with app.app_context():
        db.session.add(
            DigestDelivery(
                subscriber_id=subscriber,
                frequency="daily",
                window_end=at("2026-11-25T07:00"),
                run_id=41,
                body_id=None,
                article_count=0,
            )
        )
        db.session.add(
            AlertDelivery(subscriber_id=subscriber, article_id=17, revision=1, carried_over=True)
        )
        for outbox_id in (None, 987654):
            db.session.add(
                DeliveryEvent(
                    kind="permanent_bounce",
                    email=email,
                    outbox_id=outbox_id,
                    occurred_at=at("2026-11-20T09:00"),
                    detail="Permanent/General",
                )
            )
        db.session.commit()


# Where each table's rows about a subscriber appear in their export.
_EXPORTED_AS = {
    "subscribers": lambda data: 1,
    "subscriptions": lambda data: len(data["subscriptions"]),
    "signup_requests": lambda data: len(data["signup_requests"]),
    "outbox": lambda data: len(data["emails"]),
    "delivery_events": lambda data: (
        sum(len(e["events"]) for e in data["emails"]) + len(data["other_delivery_events"])
    ),
    "suppressions": lambda data: int(data["suppression"] is not None),
    "digest_deliveries": lambda data: len(data["digests"]),
    "alert_deliveries": lambda data: len(data["alerts"]),
}


def _rows_about(app, subscriber, address):
    """{table: rows} for every table with a row about the subscriber, read from the schema:
    by a ``subscriber_id`` column (or the subscribers table's own id), or by a text column
    holding their address."""
    found = {}
    with app.app_context():
        for table in db.metadata.sorted_tables:
            conditions = [
                column == subscriber
                for column in table.columns
                if column.name == "subscriber_id"
                or (table.name == "subscribers" and column.name == "id")
            ]
            conditions += [
                func.lower(column) == address.lower()
                for column in table.columns
                if isinstance(column.type, String | Text)
            ]
            if not conditions:
                continue
            hits = db.session.execute(
                select(func.count()).select_from(table).where(or_(*conditions))
            ).scalar_one()
            if hits:
                found[table.name] = hits
    return found


def test_export_has_a_place_for_every_row_stored_about_them(app, admin_client):
    subscriber = _everything_about(app)
    _with_ledgers_and_loose_events(app, subscriber)
    stored = _rows_about(app, subscriber, STORED)
    assert set(stored) >= {"digest_deliveries", "alert_deliveries", "delivery_events"}

    data = json.loads(admin_client.get(f"/admin/subscribers/{subscriber}/export.json").data)
    assert set(stored) <= set(_EXPORTED_AS), "a table holds them that the export leaves out"
    exported = {table: _EXPORTED_AS[table](data) for table in stored}
    assert exported == stored
    [day] = data["digests"]
    assert day == {
        "frequency": "daily",
        "window_end": "2026-11-25T07:00:00+00:00",
        "run_id": 41,
        "article_count": 0,
        "sent": False,
    }
    [alert] = data["alerts"]
    assert (alert["article_id"], alert["revision"], alert["carried_over"]) == (17, 1, True)
    assert [e["kind"] for e in data["other_delivery_events"]] == ["permanent_bounce"] * 2


def _text_columns():
    for table in db.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, String | Text | JSON):
                yield table, column


def _where_is(app, address):
    """Every (table, column) holding ``address`` in any case, read from the schema."""
    found = []
    with app.app_context():
        for table, column in _text_columns():
            value = cast(column, Text) if isinstance(column.type, JSON) else column
            hits = db.session.execute(
                select(func.count())
                .select_from(table)
                .where(or_(value.contains(address), func.lower(value).contains(address.lower())))
            ).scalar_one()
            if hits:
                found.append(f"{table.name}.{column.name}")
    return found


def test_erase_leaves_the_address_nowhere_but_a_suppression_hash(app, admin_client, mailbox):
    subscriber = _everything_about(app)
    _with_ledgers_and_loose_events(app, subscriber)
    assert _where_is(app, STORED), "the walk finds the address before"

    confirm = admin_client.get(f"/admin/subscribers/{subscriber}/erase")
    assert "cannot be undone" in confirm.get_data(as_text=True)
    response = post_form(
        admin_client,
        f"/admin/subscribers/{subscriber}/erase",
        csrf_from=f"/admin/subscribers/{subscriber}/erase",
    )
    assert response.status_code == 302

    assert _where_is(app, STORED) == []
    assert _where_is(app, "jane.doe") == []
    [kept] = rows(app, select(Suppression.email))
    assert kept == address_hash(STORED)
    assert rows(app, select(Subscription.ended_reason)) == ["erased"]
    assert count(app, SignupRequest) == 0
    assert count(app, OutboxEmail, OutboxEmail.status == "queued") == 0
    [(actor, target, details)] = rows(
        app,
        select(AuditEntry.actor, AuditEntry.target, AuditEntry.details).where(
            AuditEntry.action == "subscriber.erase"
        ),
    )
    assert (actor, target, details) == (
        "operator:ops@publisher.example",
        f"subscriber {subscriber}",
        {},
    )
    page = admin_client.get(f"/admin/subscribers/{subscriber}").get_data(as_text=True)
    assert ">erased<" in page and "Erase this subscriber" not in page

    # Signing up again with the erased address: the hash still stops mail to it.
    _topics = rows(app, select(Subscription.topic_id))
    with app.app_context():
        from alertsvc.models import Topic

        sign_up(
            STORED,
            [db.session.get(Topic, _topics[0])],
            Frequency.DAILY,
            Schedule("Europe/London", 7, 0, 7),
        )
        db.session.commit()
    assert mailbox.deliver() == []
    [status] = rows(
        app,
        select(OutboxEmail.status).where(OutboxEmail.to_address == STORED),
    )
    assert status == "suppressed"


def test_the_erase_page_offers_the_button_only_when_it_can_work(app, admin_client, viewer_client):
    """A viewer, or anyone once the subscriber is erased, is told so instead of being
    offered a button that would be refused or do nothing."""
    subscriber, _topics = _reader(app)
    path = f"/admin/subscribers/{subscriber}/erase"
    button = f'action="{path}"'
    viewer_page = viewer_client.get(path).get_data(as_text=True)
    assert "Only an admin can erase a subscriber" in viewer_page and button not in viewer_page
    assert button in admin_client.get(path).get_data(as_text=True)
    assert post_form(admin_client, path, csrf_from=path).status_code == 302
    erased_page = admin_client.get(path).get_data(as_text=True)
    assert "there is nothing left to erase" in erased_page and button not in erased_page


def test_erase_needs_an_admin_and_the_csrf_token(app, admin_client, viewer_client):
    subscriber, _topics = _reader(app)
    token = csrf_token(viewer_client, f"/admin/subscribers/{subscriber}")
    denied = viewer_client.post(
        f"/admin/subscribers/{subscriber}/erase", data={"csrf_token": token}
    )
    assert denied.status_code == 403
    no_token = admin_client.post(f"/admin/subscribers/{subscriber}/erase")
    assert no_token.status_code == 400
    assert rows(app, select(Subscriber.email)) == [STORED]
    assert count(app, AuditEntry, AuditEntry.action == "subscriber.erase") == 0
    missing = post_form(admin_client, "/admin/subscribers/999999/erase", csrf_from="/admin/")
    assert missing.status_code == 404


def test_subscribers_own_export_and_erase_use_the_same_functions(app, client):
    """ "Download my data" now has the fuller export too (same function)."""
    subscriber = _everything_about(app)
    from alertsvc.tokens import TokenPurpose, signed_url

    with app.test_request_context():
        url = signed_url(TokenPurpose.MANAGE, subscriber)
    path = re.sub(r"^https?://[^/]+", "", url)
    data = client.get(path + "/data.json").get_json()
    assert data["suppression"]["reason"] == "complaint"
    assert len(data["signup_requests"]) == 1
    assert datetime.fromisoformat(data["created_at"]).tzinfo == UTC


def test_only_admins_may_download_a_subscribers_data(app, admin_client, viewer_client):
    subscriber, _topics = _reader(app)
    page = viewer_client.get(f"/admin/subscribers/{subscriber}").get_data(as_text=True)
    assert "Download everything stored about them" not in page
    assert viewer_client.get(f"/admin/subscribers/{subscriber}/export.json").status_code == 403
    assert count(app, AuditEntry, AuditEntry.action == "subscriber.export") == 0
    exported = admin_client.get(f"/admin/subscribers/{subscriber}/export.json")
    assert exported.status_code == 200
    assert count(app, AuditEntry, AuditEntry.action == "subscriber.export") == 1
