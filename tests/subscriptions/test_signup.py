from __future__ import annotations

import re
import socket

import pytest
from sqlalchemy import select
from wtforms import SelectField, widgets

from alertsvc.extensions import limiter
from alertsvc.models import OutboxEmail, SignupRequest, Subscriber, Subscription
from alertsvc.subscriptions.forms import OptionsOnceSelect, SignupForm
from tests.factories import count, create_subscriber, live_subscriptions, rows, seed_topics
from tests.mail import html_part, link_path, text_part
from tests.subscriptions.helpers import (
    csrf_token,
    page_text,
    post_form,
    post_signup,
    signup_form,
)


def test_signup_page_lists_topics(client, app):
    seed_topics(app)
    response = client.get("/")
    assert response.status_code == 200
    text = page_text(response)
    assert "Get email alerts" in text
    assert "Digital government" in text and "Cyber security" in text


def test_signup_sends_confirmation_and_subscribes_nothing_yet(client, app, mailbox):
    seed_topics(app)
    response = post_signup(client, "Reader@Example.COM", topics=["data", "cyber-security"])
    assert response.status_code == 200
    assert "Check your email" in page_text(response)
    assert "reader@example.com" in page_text(response)

    assert count(app, Subscription) == 0
    [message] = mailbox.deliver()
    assert message["To"] == "reader@example.com"
    assert "Confirm" in message["Subject"]
    assert "Data" in text_part(message) and "Cyber security" in text_part(message)
    assert link_path(message, "/confirm/")
    assert message["List-Unsubscribe"] is None, "confirmation is not a subscription email"
    assert message["Message-ID"] and message["Date"]
    assert count(app, Subscription) == 0


def test_reply_is_the_same_for_new_pending_and_subscribed_addresses(client, app):
    topics = seed_topics(app)
    create_subscriber(app, "subscribed@example.com", {topics["data"]: "daily"})
    post_signup(client, "pending@example.com")
    replies = []
    for address in ("new@example.com", "pending@example.com", "subscribed@example.com"):
        response = post_signup(client, address)
        replies.append((response.status_code, page_text(response).replace(address, "ADDRESS")))
    assert replies[0] == replies[1] == replies[2]


def test_subscribed_reader_asking_for_more_topics_must_confirm(client, app, mailbox):
    topics = seed_topics(app)
    subscriber = create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
    post_signup(client, "reader@example.com", topics=["data", "cyber-security"])
    [message] = mailbox.deliver()
    assert link_path(message, "/confirm/")
    assert live_subscriptions(app, subscriber) == {topics["data"]: "daily"}


def test_asking_again_for_what_you_have_sends_a_manage_link(client, app, mailbox):
    topics = seed_topics(app)
    create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
    post_signup(client, "reader@example.com", topics=["data"], frequency="daily")
    [message] = mailbox.deliver()
    assert "already subscribed" in message["Subject"]
    assert link_path(message, "/manage/")
    assert count(app, SignupRequest) == 0


def test_malformed_address_shows_error_summary_and_stores_nothing(client, app):
    seed_topics(app)
    for bad in ("not-an-email", "a@b", "reader@@example.com", "x" * 400 + "@example.com", ""):
        response = post_signup(client, bad)
        assert response.status_code == 400
        text = page_text(response)
        assert "There is a problem" in text
        assert 'href="#email"' in response.get_data(as_text=True)
        assert "<title>Error:" in response.get_data(as_text=True)
    assert count(app, Subscriber) == 0 and count(app, OutboxEmail) == 0


def test_no_topic_or_unknown_topic_is_an_error(client, app):
    seed_topics(app)
    response = post_signup(client, topics=[])
    assert response.status_code == 400
    assert "Select at least one topic" in page_text(response)
    response = post_signup(client, topics=["data", "no-such-topic"])
    assert response.status_code == 400
    assert "Select topics from the list" in page_text(response)
    response = post_signup(client, frequency="hourly")
    assert response.status_code == 400
    assert "Select how often" in page_text(response)
    response = post_signup(client, timezone="Mars/Olympus")
    assert response.status_code == 400
    assert count(app, Subscriber) == 0 and count(app, OutboxEmail) == 0


def test_honeypot_gets_the_normal_reply_but_nothing_is_stored(client, app, mailbox):
    seed_topics(app)
    response = post_signup(client, website="http://spam.example")
    assert response.status_code == 200
    assert "Check your email" in page_text(response)
    assert count(app, Subscriber) == 0 and count(app, OutboxEmail) == 0
    assert mailbox.deliver() == []


def test_missing_or_forged_csrf_token_is_refused(client, app):
    seed_topics(app)
    client.get("/")
    response = client.post("/", data=signup_form())
    assert response.status_code == 400
    assert "form has expired" in page_text(response)
    response = client.post("/", data=signup_form(csrf_token="forged." + "x" * 40))
    assert response.status_code == 400
    other = client.application.test_client()
    response = client.post("/", data=signup_form(csrf_token=csrf_token(other)))
    assert response.status_code == 400
    assert count(app, Subscriber) == 0 and count(app, OutboxEmail) == 0


def test_oversized_body_is_refused(client, app):
    seed_topics(app)
    response = post_signup(client, email="a" * 70_000 + "@example.com")
    assert response.status_code == 413
    assert "too large" in page_text(response)
    assert count(app, Subscriber) == 0


def test_rate_limit_per_ip_answers_429_with_retry_after(make_app, app):
    limited = make_app(SIGNUP_RATE_LIMIT_PER_IP="3 per minute")
    seed_topics(app)
    client = limited.test_client()
    statuses = [post_signup(client, f"r{i}@example.com").status_code for i in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = post_signup(client, "r9@example.com")
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "too many attempts" in page_text(response)
    assert count(app, Subscriber) == 3


def test_rate_limit_per_address_counts_the_normalised_address(make_app, app):
    limited = make_app(SIGNUP_RATE_LIMIT_PER_ADDRESS="2 per hour")
    seed_topics(app)
    client = limited.test_client()
    assert post_signup(client, "reader@example.com").status_code == 200
    assert post_signup(client, "Reader@Example.com").status_code == 200
    assert post_signup(client, " READER@example.com").status_code == 429
    assert post_signup(client, "someone-else@example.com").status_code == 200
    assert count(app, OutboxEmail) == 3


LIBRARY_MESSAGES = ("Not a valid choice", "could not coerce", "This field is required")


def test_check_email_page_opened_without_a_signup_goes_to_the_form(client, app):
    seed_topics(app)

    response = client.get("/check-email")

    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert "sent" not in page_text(client.get("/check-email", follow_redirects=True))


def test_valid_signup_redirects_so_a_refresh_posts_nothing(client, app, mailbox):
    seed_topics(app)
    response = post_signup(client, "Reader@Example.com", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["Location"] == "/check-email"

    for _ in range(2):  # the redirect, then the reader pressing refresh
        page = client.get("/check-email")
        assert page.status_code == 200
        assert "Check your email" in page_text(page)
        assert "We've sent an email to reader@example.com" in page_text(page)
    assert count(app, OutboxEmail) == 1
    assert len(mailbox.deliver()) == 1


def test_every_valid_signup_gets_the_same_redirect(client, app):
    topics = seed_topics(app)
    create_subscriber(app, "subscribed@example.com", {topics["data"]: "daily"})
    post_signup(client, "pending@example.com")
    replies = [
        post_signup(app.test_client(), address, follow_redirects=False)
        for address in ("new@example.com", "pending@example.com", "subscribed@example.com")
    ]
    replies.append(
        post_signup(app.test_client(), website="http://spam.example", follow_redirects=False)
    )
    assert {(r.status_code, r.headers["Location"], r.get_data()) for r in replies} == {
        (303, "/check-email", replies[0].get_data())
    }


def test_internationalised_domain_is_stored_and_sent_in_ascii_and_shown_in_unicode(
    client, app, mailbox
):
    seed_topics(app)
    response = post_signup(client, "IDN@Bücher.de")
    assert response.status_code == 200
    assert "We've sent an email to idn@bücher.de" in page_text(response)
    assert rows(app, select(Subscriber.email)) == ["idn@xn--bcher-kva.de"]

    [message] = mailbox.deliver()
    assert message["To"] == "idn@xn--bcher-kva.de"
    [raw] = [p.read_bytes() for p in mailbox.directory.glob("*.eml")]
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nTo: idn@xn--bcher-kva.de\r\n" in headers
    assert b"=?utf-8?" not in headers.lower()

    confirm_page = client.get(link_path(message, "/confirm/"))
    assert "Emails will go to idn@bücher.de" in page_text(confirm_page)


def test_a_subscriber_stored_with_a_unicode_domain_is_found_whichever_form_is_typed(
    client, app, mailbox
):
    """Rows from before addresses were stored in ASCII hold the Unicode domain."""
    topics = seed_topics(app)
    subscriber_id = create_subscriber(app, "idn@bücher.de", {topics["data"]: "daily"})

    post_signup(client, "IDN@xn--bcher-kva.de", topics=["data"], frequency="daily")
    post_form(client, "/manage", {"email": "idn@xn--bcher-kva.de"})
    post_signup(client, "idn@bücher.de", topics=["cyber-security"])

    assert rows(app, select(Subscriber.id)) == [subscriber_id]
    already, manage, confirmation = mailbox.deliver()
    assert "already subscribed" in already["Subject"]
    assert manage["Subject"] == "Manage your email alerts"
    assert "Confirm" in confirmation["Subject"]
    for message in (already, manage, confirmation):
        assert message["To"] == "idn@xn--bcher-kva.de"


@pytest.mark.parametrize("path", ["/", "/manage"])
@pytest.mark.parametrize(
    ("address", "message"),
    [
        (
            "müller@example.com",
            "The part of the email address before the @ can only use the letters a to z",
        ),
        ("x" * 65 + "@example.com", "before the @ must be 64 characters or fewer"),
        ("reader@@example.com", "Enter an email address in the correct format"),
    ],
)
def test_addresses_we_cannot_send_to_are_refused_with_a_clear_message(
    path, address, message, client, app
):
    seed_topics(app)
    data = signup_form(address) if path == "/" else {"email": address}
    response = post_form(client, path, data)
    assert response.status_code == 400
    assert "There is a problem" in page_text(response)
    assert message in page_text(response)
    assert count(app, Subscriber) == 0 and count(app, OutboxEmail) == 0


def test_a_local_part_of_64_characters_is_accepted(client, app, mailbox):
    seed_topics(app)
    address = "x" * 64 + "@example.com"
    assert post_signup(client, address).status_code == 200
    assert [m["To"] for m in mailbox.deliver()] == [address]


def test_a_topic_sent_twice_is_listed_once(client, app, mailbox):
    topics = seed_topics(app)
    response = post_signup(client, topics=["data", "data"])
    assert response.status_code == 200
    assert rows(app, select(SignupRequest.topic_ids)) == [[topics["data"]]]
    [message] = mailbox.deliver()
    assert message["Subject"] == "Confirm your email alerts: Data"
    assert html_part(message).count("<li>Data</li>") == 1


def test_a_topic_sent_thousands_of_times_is_refused(client, app, mailbox):
    seed_topics(app)
    response = post_signup(client, topics=["data"] * 5000)
    assert response.status_code == 400
    assert "Select topics from the list" in page_text(response)
    assert count(app, Subscriber) == 0 and count(app, OutboxEmail) == 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"daily_hour": "abc"}, "Select a time for daily emails"),
        ({"daily_hour": "99"}, "Select a time for daily emails"),
        ({"daily_hour": None}, "Select a time for daily emails"),
        ({"weekly_day": "x"}, "Select a day for weekly emails"),
        ({"weekly_day": "7"}, "Select a day for weekly emails"),
        ({"weekly_hour": ""}, "Select a time for weekly emails"),
        ({"timezone": "Mars/Olympus"}, "Select a time zone from the list"),
        ({"timezone": None}, "Select a time zone from the list"),
        ({"frequency": None}, "Select how often you want emails"),
        ({"topics": None}, "Select at least one topic"),
        ({"email": None}, "Enter your email address"),
    ],
)
def test_signup_mistakes_are_explained_in_our_own_words(changes, message, client, app):
    seed_topics(app)
    data = signup_form()
    for name, value in changes.items():
        if value is None:
            del data[name]
        else:
            data[name] = value
    response = post_form(client, "/", data)
    assert response.status_code == 400
    text = page_text(response)
    assert message in text
    assert not [raw for raw in LIBRARY_MESSAGES if raw in text]
    assert count(app, Subscriber) == 0


@pytest.mark.parametrize("data", [{}, {"email": ""}, {"email": "   "}])
def test_email_me_a_link_mistakes_are_explained_in_our_own_words(data, client, app):
    response = post_form(client, "/manage", data)
    assert response.status_code == 400
    text = page_text(response)
    assert "Enter your email address" in text
    assert not [raw for raw in LIBRARY_MESSAGES if raw in text]


def test_topics_are_listed_in_their_display_order_everywhere(client, app, mailbox):
    seed_topics(app)
    post_signup(client, topics=["data", "cyber-security"])
    [message] = mailbox.deliver()
    assert message["Subject"] == "Confirm your email alerts: Cyber security, Data"
    assert re.findall(r"<li>([^<]+)</li>", html_part(message)) == ["Cyber security", "Data"]
    page = client.get(link_path(message, "/confirm/"))
    assert re.findall(r"<li>([^<]+)</li>", page.get_data(as_text=True)) == [
        "Cyber security",
        "Data",
    ]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_signups_go_on_with_the_limits_in_memory_while_redis_is_lost(app_with, app):
    """Redis holds the shared rate limits; without it a web process counts them in its own
    memory (the same limits) rather than failing every signup."""
    limited = app_with(
        RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{_closed_port()}/0",
        SIGNUP_RATE_LIMIT_PER_IP="3 per minute",
    )
    seed_topics(app)
    client = limited.test_client()
    try:
        statuses = [post_signup(client, f"lost{i}@example.com").status_code for i in range(4)]
    finally:
        # The limiter is one object for every app: point it back at memory, as the other
        # tests expect, and forget that its storage was lost.
        app_with()
        limiter._storage_dead = False
    assert statuses == [200, 200, 200, 429], "signed up, and still limited"
    assert count(app, Subscriber) == 3


@pytest.mark.parametrize("timezone", ["Europe/London", "America/Argentina/Buenos_Aires", "UTC"])
def test_the_signup_page_selects_render_as_wtforms_own_select_does(app, timezone):
    """The selects reuse each option's markup (OptionsOnceSelect): the page a reader gets is
    the one WTForms' own widget makes, with the reader's choices selected and every label
    escaped."""
    with app.test_request_context(
        "/", method="POST", data={"timezone": timezone, "daily_hour": "23", "weekly_day": "6"}
    ):
        form = SignupForm(topics=[])
        form.topics.choices = [("a&b", 'Data & "AI" <policy>'), ("c", "Cyber")]
        form.topics.data = ["a&b"]
        for name in ("timezone", "daily_hour", "weekly_day", "weekly_hour", "frequency"):
            field = form[name]
            if isinstance(field.widget, OptionsOnceSelect):
                rendered = field()
                assert rendered == widgets.Select()(field), name
        assert f'<option selected value="{timezone}">' in form.timezone()
        assert '<option selected value="23">23:00</option>' in form.daily_hour()
        assert form.timezone().count("<option") > 400
        flagged = SelectField(choices=[("x", 'Say "hi" & <bye>')], widget=OptionsOnceSelect()).bind(
            form, "flagged"
        )
        flagged.process(None, "x")
        assert flagged() == widgets.Select()(flagged)
        assert "Say &#34;hi&#34; &amp; &lt;bye&gt;" in flagged()
