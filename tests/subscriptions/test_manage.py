from __future__ import annotations

import json
import re
from datetime import date, timedelta
from importlib import resources

import pytest
from sqlalchemy import select

from alertsvc.models import OutboxEmail, Subscriber
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


def test_pause_until_a_date_then_resume(client, app, topics, reader):
    path = manage_path(app, reader)
    until = date.today() + timedelta(days=10)

    response = submit(
        client, path, {"until": until.isoformat()}, action=f"{path}/pause", follow_redirects=True
    )

    assert response.status_code == 200
    text = page_text(response)
    assert f"Your emails are paused until {until.day} {until:%B %Y}" in text
    assert _subscriber(app, reader).paused_until == until
    assert live_subscriptions(app, reader) == {
        topics["data"]: "weekly",
        topics["cyber-security"]: "daily",
    }

    response = submit(
        client, path, action=f"{path}/pause", having={"action": "resume"}, follow_redirects=True
    )

    assert response.status_code == 200
    assert "Your emails have been resumed." in page_text(response)
    assert "are paused until" not in page_text(response)
    assert _subscriber(app, reader).paused_until is None


@pytest.mark.parametrize(
    ("until", "message"),
    [
        ((date.today() - timedelta(days=2)).isoformat(), "The date must be in the future"),
        ("", "Enter the date to pause emails until"),
        ("31/12/2099", "Enter the date to pause emails until"),
    ],
)
def test_pause_needs_a_date_in_the_future(until, message, client, app, topics, reader):
    path = manage_path(app, reader)
    before = stored_state(app)

    response = submit(client, path, {"until": until}, action=f"{path}/pause")

    assert response.status_code == 400
    assert "There is a problem" in page_text(response)
    assert message in page_text(response)
    assert stored_state(app) == before


def test_unsubscribe_from_everything(client, app, topics, reader, mailbox):
    path = manage_path(app, reader)

    response = submit(client, path, action=f"{path}/unsubscribe-all")

    assert response.status_code == 200
    assert "You won't get any more email alerts from us" in page_text(response)
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


def test_delete_my_data(client, app, topics, mailbox):
    confirm(client, sign_up_for_link(client, mailbox, topics=["data"]))
    mailbox.deliver()
    subscriber_id = subscriber_id_for(app, "reader@example.com")
    # Asked for more topics: a confirmation email is waiting in the outbox.
    post_signup(client, "reader@example.com", topics=["cyber-security"])
    path = manage_path(app, subscriber_id)

    response = submit(client, path, action=f"{path}/erase")

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
    submit(client, path, action=f"{path}/erase")
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

    _assert_manage_link_problem(client.get(bad), status)
    for action in ("", "/pause", "/unsubscribe-all", "/erase"):
        response = client.post(bad + action, data={"csrf_token": csrf, "until": "2099-01-01"})
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
    ("action", "fields"),
    [
        ("", {"topic-data": "none"}),
        ("/pause", {"until": "2099-01-01"}),
        ("/pause", {"action": "resume"}),
        ("/unsubscribe-all", {}),
        ("/erase", {}),
    ],
)
def test_every_change_needs_the_csrf_token(action, fields, client, app, topics, reader):
    path = manage_path(app, reader)
    form = page_form(client.get(path), path)
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
