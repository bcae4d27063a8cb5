from __future__ import annotations

import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from importlib import resources
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select

from alertsvc.addresses import address_hash
from alertsvc.extensions import db
from alertsvc.models import DeliveryEvent, OutboxEmail, Subscriber, Suppression, utcnow
from alertsvc.tokens import TokenPurpose
from tests.factories import (
    count,
    create_subscriber,
    live_subscriptions,
    rows,
    seed_topics,
    stored_state,
    subscriber_id_for,
    subscription_history,
)
from tests.mail import link_path, text_part
from tests.subscriptions.helpers import (
    confirm,
    csrf_token,
    manage_path,
    page_form,
    page_text,
    post_form,
    post_signup,
    sign_up_for_link,
    signed_path,
    submit,
    tampered,
)


@pytest.fixture
def topics(app) -> dict[str, int]:
    return seed_topics(app)


@pytest.fixture
def reader(app, topics) -> int:
    """A confirmed subscriber: Data weekly and Cyber security daily, digests at their hours."""
    return create_subscriber(
        app,
        "reader@example.com",
        {topics["data"]: "weekly", topics["cyber-security"]: "daily"},
        daily_hour=18,
        weekly_day=4,
        weekly_hour=9,
        timezone="Europe/Paris",
    )


def _subscriber(app, subscriber_id: int) -> Subscriber:
    [subscriber] = rows(app, select(Subscriber).where(Subscriber.id == subscriber_id))
    return subscriber


def test_welcome_email_links_to_the_subscribers_manage_page(client, app, topics, mailbox):
    confirm(client, sign_up_for_link(client, mailbox))
    [welcome] = mailbox.deliver()

    response = app.test_client().get(link_path(welcome, "/manage/"))

    assert response.status_code == 200
    assert "Manage your email alerts" in page_text(response)
    assert "Emails go to reader@example.com" in page_text(response)


def test_page_shows_an_internationalised_address_in_unicode(client, app, topics):
    reader = create_subscriber(app, "idn@xn--bcher-kva.de", {topics["data"]: "daily"})

    text = page_text(client.get(manage_path(app, reader)))

    assert "Emails go to idn@bücher.de" in text


def test_page_shows_topics_frequency_and_delivery_times(client, app, topics, reader):
    path = manage_path(app, reader)
    response = client.get(path)

    assert response.status_code == 200
    form = page_form(response, path)
    assert form["topic-data"] == "weekly"
    assert form["topic-cyber-security"] == "daily"
    assert form["topic-digital-government"] == "none"
    assert (form["daily_hour"], form["weekly_day"], form["weekly_hour"]) == ("18", "4", "9")
    assert form["timezone"] == "Europe/Paris"
    text = page_text(response)
    assert "Data" in text and "Cyber security" in text
    assert "not subscribed to any topics" not in text


def test_add_and_drop_topics(client, app, topics, reader):
    path = manage_path(app, reader)

    response = submit(client, path, {"topic-data": "none", "topic-local-digital": "immediately"})

    assert response.status_code == 303
    assert response.headers["Location"] == path
    assert "Your changes have been saved." in page_text(client.get(path))
    assert live_subscriptions(app, reader) == {
        topics["cyber-security"]: "daily",
        topics["local-digital"]: "immediately",
    }
    assert subscription_history(app, reader) == [
        (topics["data"], "weekly", "unsubscribed"),
        (topics["cyber-security"], "daily", "live"),
        (topics["local-digital"], "immediately", "live"),
    ]
    assert page_form(client.get(path), path)["topic-local-digital"] == "immediately"


def test_changing_frequency_ends_the_old_row_and_starts_a_new_one(client, app, topics, reader):
    path = manage_path(app, reader)
    before = subscription_history(app, reader)

    assert submit(client, path, {"topic-data": "daily"}).status_code == 303

    assert before == [
        (topics["data"], "weekly", "live"),
        (topics["cyber-security"], "daily", "live"),
    ]
    assert subscription_history(app, reader) == [
        (topics["data"], "weekly", "frequency_changed"),
        (topics["cyber-security"], "daily", "live"),
        (topics["data"], "daily", "live"),
    ]
    # Saving again without changes starts nothing new.
    assert submit(client, path).status_code == 303
    assert len(subscription_history(app, reader)) == 3


def test_changing_delivery_times_and_timezone(client, app, topics, reader):
    path = manage_path(app, reader)

    response = submit(
        client,
        path,
        {"daily_hour": "6", "weekly_day": "0", "weekly_hour": "21", "timezone": "Asia/Tokyo"},
    )

    assert response.status_code == 303
    subscriber = _subscriber(app, reader)
    assert (subscriber.daily_hour, subscriber.weekly_day, subscriber.weekly_hour) == (6, 0, 21)
    assert subscriber.timezone == "Asia/Tokyo"
    form = page_form(client.get(path), path)
    assert (form["daily_hour"], form["weekly_hour"], form["timezone"]) == ("6", "21", "Asia/Tokyo")
    assert live_subscriptions(app, reader) == {
        topics["data"]: "weekly",
        topics["cyber-security"]: "daily",
    }


LIBRARY_MESSAGES = ("Not a valid", "Invalid Choice", "could not coerce", "This field is required")
MISSING = object()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "Select a time zone from the list"),
        ({"timezone": MISSING}, "Select a time zone from the list"),
        ({"topic-data": "hourly"}, "Select how often you want emails about Data"),
        ({"topic-data": MISSING}, "Select how often you want emails about Data"),
        ({"daily_hour": "24"}, "Select a time for daily emails"),
        ({"daily_hour": "seven"}, "Select a time for daily emails"),
        ({"weekly_day": MISSING}, "Select a day for weekly emails"),
        ({"weekly_hour": "9am"}, "Select a time for weekly emails"),
    ],
)
def test_invalid_changes_are_shown_in_our_words_and_nothing_is_stored(
    changes, message, client, app, topics, reader
):
    path = manage_path(app, reader)
    form = page_form(client.get(path), path)
    for name, value in changes.items():
        if value is MISSING:
            del form[name]
        else:
            form[name] = value
    before = stored_state(app)

    response = client.post(path, data=form)

    assert response.status_code == 400
    text = page_text(response)
    assert "There is a problem" in text
    assert text.count(message) == 2, "in the summary and beside the field"
    assert not [raw for raw in LIBRARY_MESSAGES if raw in text]
    assert stored_state(app) == before


def test_head_on_a_manage_link_answers_like_get(client, app, topics, reader):
    path = manage_path(app, reader)

    response = client.head(path)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.get_data() == b""


def _typed_date(day: object, month: object, year: object) -> dict[str, str]:
    """The pause form's day, month and year boxes as a reader fills them in."""
    return {"until-day": str(day), "until-month": str(month), "until-year": str(year)}


def _paris_today() -> date:
    return datetime.now(ZoneInfo("Europe/Paris")).date()


def test_pause_until_a_date_then_resume(client, app, topics, reader):
    path = manage_path(app, reader)
    until = _paris_today() + timedelta(days=10)
    form = page_form(client.get(path), f"{path}/pause")
    assert set(form) == {"csrf_token", "until-day", "until-month", "until-year"}

    response = submit(
        client,
        path,
        _typed_date(until.day, f"{until.month:02d}", until.year),
        action=f"{path}/pause",
        follow_redirects=True,
    )

    assert response.status_code == 200
    text = page_text(response)
    assert f"Your emails are paused until {until.day} {until:%B %Y}" in text
    assert _subscriber(app, reader).paused_until == until
    assert live_subscriptions(app, reader) == {
        topics["data"]: "weekly",
        topics["cyber-security"]: "daily",
    }
    shown = page_form(response, f"{path}/pause", having={"until-year": str(until.year)})
    assert (shown["until-day"], shown["until-month"]) == (str(until.day), str(until.month))

    response = submit(
        client, path, action=f"{path}/pause", having={"action": "resume"}, follow_redirects=True
    )

    assert response.status_code == 200
    assert "Your emails have been resumed." in page_text(response)
    assert "are paused until" not in page_text(response)
    assert _subscriber(app, reader).paused_until is None


def test_a_pause_can_last_up_to_a_year(client, app, topics, reader):
    path = manage_path(app, reader)
    today = _paris_today()
    a_year_on = date(today.year + 1, today.month, min(today.day, 28 if today.month == 2 else 31))

    response = submit(
        client,
        path,
        _typed_date(a_year_on.day, a_year_on.month, a_year_on.year),
        action=f"{path}/pause",
    )

    assert response.status_code == 303
    assert _subscriber(app, reader).paused_until == a_year_on


@pytest.mark.parametrize(
    ("typed", "message", "boxes"),
    [
        (lambda: _paris_today() - timedelta(days=2), "The date must be in the future", "dmy"),
        (_paris_today, "The date must be in the future", "dmy"),
        (
            lambda: date(9999, 12, 31),
            "You can pause emails for up to a year: enter a date no later than",
            "dmy",
        ),
        (
            lambda: _paris_today() + timedelta(days=367),
            "You can pause emails for up to a year: enter a date no later than",
            "dmy",
        ),
        (("", "", ""), "Enter the date to pause emails until", "dmy"),
        (("31", "", "2027"), "The date must include a month", "m"),
        (("", "", "2027"), "The date must include a day and month", "dm"),
        (("31", "2", "2027"), "The date must be a real date", "dmy"),
        (("1", "jan", "2027"), "The date must be a real date", "m"),
        (("99999999999999999999", "1", "2027"), "The date must be a real date", "dmy"),
        (("1", "1", "27"), "The year must include 4 numbers", "y"),
    ],
)
def test_pause_needs_a_real_date_within_a_year(typed, message, boxes, client, app, topics, reader):
    path = manage_path(app, reader)
    if callable(typed):
        until = typed()
        typed = (until.day, until.month, until.year)
    before = stored_state(app)

    response = submit(client, path, _typed_date(*typed), action=f"{path}/pause")

    assert response.status_code == 400
    text = page_text(response)
    assert "There is a problem" in text
    assert text.count(message) == 2, "in the summary and above the boxes"
    assert not [raw for raw in LIBRARY_MESSAGES if raw in text]
    html = response.get_data(as_text=True)
    first = {"d": "day", "m": "month", "y": "year"}[boxes[0]]
    assert f'<li><a href="#until-{first}">' in html
    flagged = re.findall(r'id="until-(day|month|year)"[^>]*class="[^"]*input--error', html)
    assert "".join(part[0] for part in flagged) == boxes
    # What was typed is shown again to be corrected.
    shown = page_form(response, f"{path}/pause")
    assert [shown[f"until-{p}"] for p in ("day", "month", "year")] == [str(v) for v in typed]
    assert stored_state(app) == before


def test_unsubscribe_from_everything_asks_first_and_says_what_will_end(
    client, app, topics, reader, mailbox
):
    path = manage_path(app, reader)
    assert page_form(client.get(path), f"{path}/unsubscribe-all") == {}
    before = stored_state(app)

    confirm_page = client.get(f"{path}/unsubscribe-all")

    assert confirm_page.status_code == 200
    assert page_text(confirm_page).startswith(
        "Are you sure you want to unsubscribe from all emails? "
        "You'll stop getting emails about: Cyber security Data"
    )
    assert stored_state(app) == before

    response = submit(client, f"{path}/unsubscribe-all")

    assert response.status_code == 200
    text = page_text(response)
    assert "You won't get any more emails about: Cyber security Data" in text
    assert "You won't get any more email alerts from us" in text
    assert f'href="{path}"' in response.get_data(as_text=True)
    assert sorted(subscription_history(app, reader)) == sorted(
        [
            (topics["data"], "weekly", "unsubscribed"),
            (topics["cyber-security"], "daily", "unsubscribed"),
        ]
    )
    assert "You're not subscribed to any topics at the moment" in page_text(client.get(path))
    assert mailbox.deliver() == []


def test_download_my_data(client, app, topics, mailbox):
    confirm(client, sign_up_for_link(client, mailbox, topics=["data"], frequency="weekly"))
    mailbox.deliver()
    path = manage_path(app, subscriber_id_for(app, "reader@example.com"))
    link = f"{path}/data.json"
    assert f'href="{link}"' in client.get(path).get_data(as_text=True)

    response = client.get(link)

    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    data = json.loads(response.get_data(as_text=True))
    assert data["email"] == "reader@example.com"
    assert data["timezone"] == "Europe/London"
    assert [(s["topic"], s["frequency"], s["ended_at"]) for s in data["subscriptions"]] == [
        ("data", "weekly", None)
    ]
    assert sorted(e["subject"] for e in data["emails"]) == [
        "Confirm your email alerts: Data",
        "You're subscribed: Data",
    ]
    assert all(e["status"] == "sent" for e in data["emails"])
    assert all(e["to_address"] == "reader@example.com" for e in data["emails"])
    assert all(e["events"] == [] for e in data["emails"])
    [request] = data["signup_requests"]
    assert (request["frequency"], request["confirmed_at"] is not None) == ("weekly", True)
    assert data["status"] == "confirmed" and data["suppression"] is None


def test_delete_my_data(client, app, topics, mailbox):
    confirm(client, sign_up_for_link(client, mailbox, topics=["data"]))
    mailbox.deliver()
    subscriber_id = subscriber_id_for(app, "reader@example.com")
    # Asked for more topics: a confirmation email is waiting in the outbox.
    post_signup(client, "reader@example.com", topics=["cyber-security"])
    path = manage_path(app, subscriber_id)
    assert page_form(client.get(path), f"{path}/erase") == {}
    before = stored_state(app)

    confirm_page = client.get(f"{path}/erase")

    assert confirm_page.status_code == 200
    assert page_text(confirm_page).startswith(
        "Are you sure you want to delete your data? Deleting your data: "
        "stops your emails about Data "
        "cancels any emails not yet sent "
        "removes your email address, reader@example.com, from our records "
        "stops every link in our emails to you working, including this one "
        "You cannot undo this."
    )
    assert stored_state(app) == before

    response = submit(client, f"{path}/erase")

    assert response.status_code == 200
    assert "Your data has been deleted" in page_text(response)
    assert "reader@example.com" not in repr(stored_state(app))
    erased = _subscriber(app, subscriber_id)
    assert erased.email.endswith("@erased.invalid") and erased.erased_at is not None
    assert subscription_history(app, subscriber_id) == [(topics["data"], "daily", "erased")]
    assert mailbox.deliver() == []
    assert count(app, OutboxEmail, OutboxEmail.status == "queued") == 0


def test_links_stop_working_once_the_data_is_deleted(client, app, topics, reader):
    path = manage_path(app, reader)
    assert submit(client, f"{path}/erase").status_code == 200
    before = stored_state(app)

    response = client.get(path)
    assert response.status_code == 400
    assert "This link does not work" in page_text(response)
    response = post_form(
        client, path, {f"topic-{slug}": "daily" for slug in topics}, csrf_from="/manage"
    )
    assert response.status_code == 400
    assert stored_state(app) == before


def test_email_me_a_link_sends_a_working_manage_link(client, app, topics, reader, mailbox):
    response = client.get("/manage")
    assert response.status_code == 200
    assert "Enter the email address you subscribed with" in page_text(response)

    response = submit(client, "/manage", {"email": " Reader@Example.com"})

    assert response.status_code == 200
    assert "Check your email" in page_text(response)
    [message] = mailbox.deliver()
    assert message["To"] == "reader@example.com"
    assert message["Subject"] == "Manage your email alerts"
    page = app.test_client().get(link_path(message, "/manage/"))
    assert page.status_code == 200
    assert "Emails go to reader@example.com" in page_text(page)


def test_email_me_a_link_replies_the_same_whatever_the_address(client, app, topics, mailbox):
    create_subscriber(app, "known@example.com", {topics["data"]: "daily"})
    post_signup(client, "pending@example.com")
    mailbox.deliver()

    replies = []
    for address in ("known@example.com", "unknown@example.com", "pending@example.com"):
        response = submit(app.test_client(), "/manage", {"email": address})
        replies.append((response.status_code, page_text(response).replace(address, "ADDRESS")))

    assert replies[0] == replies[1] == replies[2]
    assert replies[0][0] == 200
    assert [m["To"] for m in mailbox.deliver()] == ["known@example.com"]


def test_email_me_a_link_needs_a_valid_address(client, app, topics, mailbox):
    response = submit(client, "/manage", {"email": "not-an-address"})

    assert response.status_code == 400
    assert "Enter an email address in the correct format" in page_text(response)
    assert mailbox.deliver() == []


def _assert_manage_link_problem(response, status: int) -> None:
    assert response.status_code == status
    text = page_text(response)
    expected = "This link has expired" if status == 410 else "This link does not work"
    assert expected in text
    assert "Email me a link" in text
    assert "Traceback" not in response.get_data(as_text=True)
    form = page_form(response, "/manage")
    assert set(form) == {"csrf_token", "email"}


@pytest.mark.parametrize("kind", ["tampered", "confirm token", "unknown subscriber", "expired"])
def test_bad_manage_links_get_a_clear_page_offering_a_fresh_link(
    kind, client, app, topics, reader, mailbox
):
    good = manage_path(app, reader)
    other = create_subscriber(app, "other@example.com", {topics["data"]: "daily"})
    bad = {
        "tampered": lambda: tampered(good, other),
        "confirm token": lambda: (
            "/manage/" + signed_path(app, TokenPurpose.CONFIRM, reader).removeprefix("/confirm/")
        ),
        "unknown subscriber": lambda: manage_path(app, reader + 1000),
        "expired": lambda: manage_path(app, reader, age=timedelta(days=91)),
    }[kind]()
    status = 410 if kind == "expired" else 400
    before = stored_state(app)
    csrf = csrf_token(client, "/manage")

    for page in ("", "/unsubscribe-all", "/erase"):
        _assert_manage_link_problem(client.get(bad + page), status)
        assert client.head(bad + page).status_code == status
    for action in ("", "/pause", "/unsubscribe-all", "/erase"):
        response = client.post(
            bad + action, data={"csrf_token": csrf, **_typed_date(1, 1, date.today().year + 1)}
        )
        _assert_manage_link_problem(response, status)
    _assert_manage_link_problem(client.get(bad + "/data.json"), status)
    assert stored_state(app) == before

    # The page's own form emails a fresh link that works.
    response = submit(client, bad, {"email": "reader@example.com"}, action="/manage")
    assert response.status_code == 200
    [message] = mailbox.deliver()
    assert app.test_client().get(link_path(message, "/manage/")).status_code == 200


def test_a_manage_link_lasts_ninety_days(client, app, topics, reader):
    assert client.get(manage_path(app, reader, age=timedelta(days=89))).status_code == 200


@pytest.mark.parametrize(
    ("page", "action", "fields"),
    [
        ("", "", {"topic-data": "none"}),
        ("", "/pause", _typed_date(1, 1, date.today().year + 1)),
        ("", "/pause", {"action": "resume"}),
        ("/unsubscribe-all", "/unsubscribe-all", {}),
        ("/erase", "/erase", {}),
    ],
)
def test_every_change_needs_the_csrf_token(page, action, fields, client, app, topics, reader):
    path = manage_path(app, reader)
    form = page_form(client.get(path + page), path + page)
    form.update(fields)
    del form["csrf_token"]
    before = stored_state(app)

    response = client.post(path + action, data=form)

    assert response.status_code == 400
    assert "this form has expired" in page_text(response)
    assert stored_state(app) == before


def test_email_me_a_link_needs_the_csrf_token(client, app, topics, reader, mailbox):
    client.get("/manage")
    response = client.post("/manage", data={"email": "reader@example.com"})

    assert response.status_code == 400
    assert "this form has expired" in page_text(response)
    assert mailbox.deliver() == []


def test_manage_link_email_text(client, app, topics, reader, mailbox):
    submit(client, "/manage", {"email": "reader@example.com"})
    [message] = mailbox.deliver()
    assert "change your topics" in text_part(message)
    assert message["List-Unsubscribe"] is None, "a link asked for is not a subscription email"


def _timezone_options(response) -> list[str]:
    html = response.get_data(as_text=True)
    select = html[
        html.index('<select id="timezone"') : html.index(
            "</select>", html.index('<select id="timezone"')
        )
    ]
    return re.findall(r'<option[^>]*value="([^"]*)"', select)


def test_time_zones_offered_are_the_canonical_ones_default_and_utc_first(
    client, app, topics, reader
):
    options = _timezone_options(client.get(manage_path(app, reader)))

    assert options[:2] == ["Europe/London", "UTC"]
    assert len(options) == len(set(options))
    assert {"Asia/Kolkata", "Europe/Kyiv", "America/New_York", "Europe/Paris"} <= set(options)
    assert not {"Asia/Calcutta", "Europe/Kiev", "US/Eastern", "GB", "Etc/UTC"} & set(options)
    zone_tab = (resources.files("tzdata.zoneinfo") / "zone.tab").read_text().splitlines()
    assert len(options) == 1 + sum(1 for line in zone_tab if line and not line.startswith("#"))
    assert _timezone_options(client.get("/")) == options, "signup offers the same list"


def test_a_subscriber_stored_under_an_old_zone_name_sees_and_keeps_its_canonical_name(
    client, app, topics
):
    subscriber_id = create_subscriber(
        app, "reader@example.com", {topics["data"]: "daily"}, timezone="Asia/Calcutta"
    )
    path = manage_path(app, subscriber_id)

    assert page_form(client.get(path), path)["timezone"] == "Asia/Kolkata"
    assert submit(client, path).status_code == 303
    assert _subscriber(app, subscriber_id).timezone == "Asia/Kolkata"

    assert submit(client, path, {"timezone": "US/Eastern"}).status_code == 303
    assert _subscriber(app, subscriber_id).timezone == "America/New_York"


def _duplicate_ids(response) -> list[str]:
    ids = re.findall(r'\sid="([^"]*)"', response.get_data(as_text=True))
    return sorted({i for i in ids if ids.count(i) > 1})


def test_no_id_is_used_twice_on_any_manage_page(client, app, topics, reader):
    path = manage_path(app, reader)
    pause = f"{path}/pause"
    soon = _paris_today() + timedelta(days=3)
    assert (
        submit(client, path, _typed_date(soon.day, soon.month, soon.year), action=pause).status_code
        == 303
    )
    pages = {
        "paused, with the resume button": client.get(path),
        "topics form with a problem": submit(client, path, {"timezone": "Mars/Olympus"}),
        "pause form with a problem": submit(
            client,
            path,
            _typed_date(1, "", 2027),
            action=pause,
            having={"until-year": str(soon.year)},
        ),
        "unsubscribe from all": client.get(f"{path}/unsubscribe-all"),
        "delete your data": client.get(f"{path}/erase"),
    }

    assert "Resume emails now" in page_text(pages["paused, with the resume button"])
    assert {name: _duplicate_ids(page) for name, page in pages.items()} == {
        name: [] for name in pages
    }


@pytest.mark.skipif(
    not os.environ.get("ALERTSVC_TEST_DATABASE_URL"),
    reason="two requests writing at once need PostgreSQL; CI runs the suite on it too",
)
def test_two_manage_posts_adding_the_same_topic_at_once_make_one_subscription(app, topics, reader):
    """A double-clicked Save: both requests read "not subscribed" before either inserts."""
    path = manage_path(app, reader)
    clients = [app.test_client(), app.test_client()]
    forms = []
    for client in clients:
        form = page_form(client.get(path), path)
        form["topic-local-digital"] = "immediately"
        forms.append(form)

    both_looked = threading.Barrier(2, timeout=30)
    looked = threading.local()

    def wait_for_the_other(conn, cursor, statement, parameters, context, executemany):
        first_look = not getattr(looked, "once", False)
        if first_look and "FOR UPDATE" in statement and "subscriptions" in statement:
            looked.once = True
            both_looked.wait()

    with app.app_context():
        engine = db.engine
    event.listen(engine, "after_cursor_execute", wait_for_the_other)
    try:
        with ThreadPoolExecutor(2) as pool:
            responses = list(pool.map(lambda c, f: c.post(path, data=f), clients, forms))
    finally:
        event.remove(engine, "after_cursor_execute", wait_for_the_other)

    assert [r.status_code for r in responses] == [303, 303]
    assert live_subscriptions(app, reader) == {
        topics["data"]: "weekly",
        topics["cyber-security"]: "daily",
        topics["local-digital"]: "immediately",
    }
    assert (
        subscription_history(app, reader).count((topics["local-digital"], "immediately", "live"))
        == 1
    )
    assert len(subscription_history(app, reader)) == 3


def test_delete_my_data_blanks_what_ses_said_and_keeps_only_a_hash_of_a_suppression(
    client, app, topics, mailbox
):
    confirm(client, sign_up_for_link(client, mailbox, topics=["data"]))
    mailbox.deliver()
    subscriber_id = subscriber_id_for(app, "reader@example.com")
    with app.app_context():
        sent = db.session.scalar(select(OutboxEmail.id).order_by(OutboxEmail.id).limit(1))
        db.session.add(
            DeliveryEvent(
                kind="complaint", email="reader@example.com", outbox_id=sent, occurred_at=utcnow()
            )
        )
        db.session.add(
            Suppression(email="reader@example.com", reason="complaint", source="ses", detail="x")
        )
        db.session.commit()
    path = manage_path(app, subscriber_id)
    data = client.get(f"{path}/data.json").get_json()
    assert data["suppression"]["reason"] == "complaint"
    assert [e["events"][0]["kind"] for e in data["emails"] if e["events"]] == ["complaint"]

    assert submit(client, f"{path}/erase").status_code == 200

    assert "reader@example.com" not in repr(stored_state(app))
    assert rows(app, select(DeliveryEvent.email)) == [""]
    assert rows(app, select(Suppression.email, Suppression.reason)) == [
        (address_hash("reader@example.com"), "complaint")
    ]
