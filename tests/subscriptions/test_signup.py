from __future__ import annotations

from alertsvc.models import OutboxEmail, SignupRequest, Subscriber, Subscription
from tests.factories import count, create_subscriber, live_subscriptions, seed_topics
from tests.mail import link_path, text_part
from tests.subscriptions.helpers import csrf_token, page_text, post_signup, signup_form


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
