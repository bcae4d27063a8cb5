from __future__ import annotations

import re
from urllib.parse import unquote

import pytest

from alertsvc.tokens import TokenPurpose
from tests.conftest import TEST_SECRET_KEY
from tests.factories import (
    create_subscriber,
    live_subscriptions,
    seed_topics,
    stored_state,
    subscriber_id_for,
    subscription_history,
)
from tests.mail import link_path
from tests.subscriptions.helpers import (
    confirm,
    manage_path,
    page_form,
    page_text,
    sign_up_for_link,
    signed_path,
    submit,
    tampered,
    unsubscribe_path,
)

ONE_CLICK = {"List-Unsubscribe": "One-Click"}
NEW_SECRET_KEY = "rotated-secret-key-0123456789abcdefghijklmnop"


@pytest.fixture
def topics(app) -> dict[str, int]:
    return seed_topics(app)


def _welcome_email(client, mailbox, **signup_fields):
    """Sign up, confirm, and return the "You're subscribed" email that arrived."""
    path = sign_up_for_link(client, mailbox, **signup_fields)
    assert confirm(client, path).status_code == 200
    [welcome] = mailbox.deliver()
    return welcome


def _one_click_url(message) -> str:
    """The https URL of the List-Unsubscribe header, as a mail client reads it."""
    match = re.fullmatch(r"<(https://[^>]+)>, <mailto:[^>]+>", message["List-Unsubscribe"])
    assert match, message["List-Unsubscribe"]
    return match.group(1)


def _link(response, text: str) -> str:
    """The href of the link on the page whose text is ``text``."""
    html = response.get_data(as_text=True)
    match = re.search(rf'<a href="([^"]+)">{re.escape(text)}</a>', html)
    assert match, f"no link {text!r}"
    return match.group(1)


def _one_click(app, url: str):
    """POST the way a mailbox provider does (RFC 8058): a client with no cookies, no CSRF."""
    mail_client = app.test_client()
    assert mail_client.get_cookie("session") is None
    return mail_client.post(
        url.removeprefix("https://alerts.test"),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )


def test_subscription_emails_carry_one_click_unsubscribe_headers(client, app, topics, mailbox):
    welcome = _welcome_email(client, mailbox)

    match = re.fullmatch(
        r"<https://alerts\.test(/unsubscribe/[^>]+)>, "
        r"<mailto:unsubscribe@alerts\.test\?subject=([^>]+)>",
        welcome["List-Unsubscribe"],
    )
    assert match, welcome["List-Unsubscribe"]
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    path, subject = match.groups()
    assert path == link_path(welcome, "/unsubscribe/"), "the header and the footer link agree"
    assert unquote(subject) == "unsubscribe " + path.removeprefix("/unsubscribe/")


def test_one_click_post_unsubscribes_at_once_with_200_and_no_redirect(client, app, topics, mailbox):
    welcome = _welcome_email(client, mailbox, topics=["data", "cyber-security"])
    subscriber_id = subscriber_id_for(app, "reader@example.com")

    response = _one_click(app, _one_click_url(welcome))

    assert response.status_code == 200
    assert "Location" not in response.headers
    text = page_text(response)
    assert "You've unsubscribed You won't get any more emails about: Cyber security Data" in text
    assert "You won't get any more email alerts from us." in text
    assert live_subscriptions(app, subscriber_id) == {}
    manage = app.test_client().get(_link(response, "Choose topics again"))
    assert "You're not subscribed to any topics at the moment" in page_text(manage)
    assert sorted(subscription_history(app, subscriber_id)) == sorted(
        [
            (topics["data"], "daily", "unsubscribed"),
            (topics["cyber-security"], "daily", "unsubscribed"),
        ]
    )
    assert mailbox.deliver() == []


def test_one_click_ends_only_the_topics_that_email_was_about(client, app, topics, mailbox):
    subscriber_id = create_subscriber(
        app, "reader@example.com", {topics["data"]: "daily", topics["local-digital"]: "weekly"}
    )
    welcome = _welcome_email(client, mailbox, topics=["cyber-security"])
    assert live_subscriptions(app, subscriber_id) == {
        topics["data"]: "daily",
        topics["local-digital"]: "weekly",
        topics["cyber-security"]: "daily",
    }

    response = _one_click(app, _one_click_url(welcome))

    assert response.status_code == 200
    assert "Location" not in response.headers
    assert page_text(response).startswith(
        "You've unsubscribed You won't get any more emails about: Cyber security "
        "You still get emails about: Data Local digital "
        "Manage your email alerts to change or stop these too."
    )
    assert live_subscriptions(app, subscriber_id) == {
        topics["data"]: "daily",
        topics["local-digital"]: "weekly",
    }
    manage = app.test_client().get(_link(response, "Manage your email alerts"))
    assert manage.status_code == 200
    assert page_form(manage, _link(response, "Manage your email alerts"))["topic-data"] == "daily"


def test_get_shows_a_button_and_unsubscribes_nothing(client, app, topics, mailbox):
    welcome = _welcome_email(client, mailbox)
    path = link_path(welcome, "/unsubscribe/")
    before = stored_state(app)
    visitor = app.test_client()

    response = visitor.get(path)

    assert response.status_code == 200
    assert "You'll stop getting emails about: Data" in page_text(response)
    assert page_form(response, path) == ONE_CLICK, "the button needs no cookie or CSRF token"
    assert stored_state(app) == before

    response = submit(visitor, path)
    assert response.status_code == 200
    assert "You won't get any more emails about: Data" in page_text(response)
    assert live_subscriptions(app, subscriber_id_for(app, "reader@example.com")) == {}


def test_unsubscribing_twice_is_harmless(client, app, topics, mailbox):
    welcome = _welcome_email(client, mailbox)
    url = _one_click_url(welcome)
    subscriber_id = subscriber_id_for(app, "reader@example.com")
    assert _one_click(app, url).status_code == 200
    after_first = stored_state(app)

    again = _one_click(app, url)

    assert again.status_code == 200
    assert "Location" not in again.headers
    assert "You were already unsubscribed, so nothing has changed" in page_text(again)
    assert stored_state(app) == after_first
    assert subscription_history(app, subscriber_id) == [(topics["data"], "daily", "unsubscribed")]
    revisit = app.test_client().get(url.removeprefix("https://alerts.test"))
    assert revisit.status_code == 200
    assert "nothing to do" in page_text(revisit)


def test_link_in_an_old_email_still_works_after_a_frequency_change(client, app, topics, mailbox):
    welcome = _welcome_email(client, mailbox, frequency="daily")
    subscriber_id = subscriber_id_for(app, "reader@example.com")
    manage = manage_path(app, subscriber_id)
    assert submit(client, manage, {"topic-data": "weekly"}).status_code == 303

    assert _one_click(app, _one_click_url(welcome)).status_code == 200

    assert subscription_history(app, subscriber_id) == [
        (topics["data"], "daily", "frequency_changed"),
        (topics["data"], "weekly", "unsubscribed"),
    ]


def test_links_signed_with_a_rotated_key_still_work(client, app, make_app, topics, mailbox):
    welcome = _welcome_email(client, mailbox, topics=["data"])
    subscriber_id = subscriber_id_for(app, "reader@example.com")
    rotated = make_app(SECRET_KEY=NEW_SECRET_KEY, SECRET_KEY_FALLBACKS=[TEST_SECRET_KEY])

    manage = rotated.test_client().get(link_path(welcome, "/manage/"))
    assert manage.status_code == 200
    response = _one_click(rotated, _one_click_url(welcome))

    assert response.status_code == 200
    assert "You won't get any more emails about: Data" in page_text(response)
    assert live_subscriptions(app, subscriber_id) == {}
    # New links are signed with the new key, which the old key alone does not accept.
    fresh = unsubscribe_path(rotated, subscriber_id, [topics["data"]])
    assert rotated.test_client().get(fresh).status_code == 200
    assert app.test_client().get(fresh).status_code == 400


def test_link_signed_with_an_unknown_key_is_refused(client, app, make_app, topics, mailbox):
    welcome = _welcome_email(client, mailbox)
    subscriber_id = subscriber_id_for(app, "reader@example.com")
    retired = make_app(SECRET_KEY=NEW_SECRET_KEY)  # the old key dropped from the fallbacks
    before = stored_state(app)

    response = _one_click(retired, _one_click_url(welcome))

    assert response.status_code == 400
    assert "This link does not work" in page_text(response)
    assert stored_state(app) == before
    assert live_subscriptions(app, subscriber_id) == {topics["data"]: "daily"}


@pytest.mark.parametrize(
    "kind",
    [
        "tampered",
        "manage token",
        "unknown subscriber",
        "truncated",
        "signed, topics not a list",
        "signed, topic not an id",
    ],
)
def test_bad_unsubscribe_links_get_a_clear_page_and_change_nothing(
    kind, client, app, topics, mailbox
):
    welcome = _welcome_email(client, mailbox)
    good = link_path(welcome, "/unsubscribe/")
    subscriber_id = subscriber_id_for(app, "reader@example.com")
    other = create_subscriber(app, "other@example.com", {topics["data"]: "daily"})
    bad = {
        "tampered": lambda: tampered(good, {"s": other, "t": [topics["data"]]}),
        "manage token": lambda: (
            "/unsubscribe/" + manage_path(app, subscriber_id).removeprefix("/manage/")
        ),
        "unknown subscriber": lambda: unsubscribe_path(app, subscriber_id + 1000, None),
        "truncated": lambda: good[:-5],
        # Genuinely signed, but a shape this service never makes: the button page and the
        # one-click POST check it the same way.
        "signed, topics not a list": lambda: signed_path(
            app, TokenPurpose.UNSUBSCRIBE, {"s": subscriber_id, "t": topics["data"]}
        ),
        "signed, topic not an id": lambda: signed_path(
            app, TokenPurpose.UNSUBSCRIBE, {"s": subscriber_id, "t": ["data"]}
        ),
    }[kind]()
    before = stored_state(app)

    for response in (app.test_client().get(bad), _one_click(app, "https://alerts.test" + bad)):
        assert response.status_code == 400
        assert "This link does not work" in page_text(response)
        assert "Email me a link" in page_text(response)
        assert "Traceback" not in response.get_data(as_text=True)
    assert stored_state(app) == before
