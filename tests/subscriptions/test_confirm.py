from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.exc import IntegrityError

from alertsvc.extensions import db
from alertsvc.models import SignupRequest, Subscriber, Subscription, Topic, utcnow
from alertsvc.subscriptions import services
from alertsvc.tokens import InvalidToken, TokenPurpose, read_token
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
from tests.mail import html_part, link_path, text_part
from tests.subscriptions.helpers import (
    confirm,
    csrf_token,
    manage_path,
    page_text,
    post_form,
    sign_up_for_link,
    signed_path,
    tampered,
    unsubscribe_path,
)


def _request_id(app) -> int:
    [request_id] = rows(app, select(SignupRequest.id))
    return request_id


def test_confirmation_email_carries_a_timed_confirm_token_for_that_signup(client, app, mailbox):
    seed_topics(app)
    path = sign_up_for_link(client, mailbox, topics=["data", "cyber-security"])
    token = path.removeprefix("/confirm/")
    with app.app_context():
        assert read_token(TokenPurpose.CONFIRM, token) == _request_id(app)
        # Its own salt: the same signature means nothing for any other purpose.
        for purpose in (TokenPurpose.MANAGE, TokenPurpose.UNSUBSCRIBE):
            with pytest.raises(InvalidToken):
                read_token(purpose, token)


def test_get_shows_what_will_be_confirmed_and_changes_nothing(client, app, mailbox):
    seed_topics(app)
    path = sign_up_for_link(client, mailbox, topics=["data", "cyber-security"], frequency="weekly")
    before = stored_state(app)

    response = client.get(path)

    assert response.status_code == 200
    text = page_text(response)
    assert "Confirm your subscription" in text
    assert "a weekly email" in text
    assert "Data" in text and "Cyber security" in text
    assert "reader@example.com" in text
    assert '<button type="submit" class="button">Confirm subscription</button>' in (
        response.get_data(as_text=True)
    )
    assert stored_state(app) == before
    assert mailbox.deliver() == []


def test_post_confirms_and_sends_one_welcome_email(client, app, mailbox):
    topics = seed_topics(app)
    path = sign_up_for_link(
        client,
        mailbox,
        topics=["data", "cyber-security"],
        frequency="daily",
        daily_hour="18",
        timezone="America/New_York",
    )

    response = confirm(client, path)

    assert response.status_code == 200
    text = page_text(response)
    assert "Subscription confirmed" in text
    assert "already" not in text
    assert "Data" in text and "Cyber security" in text
    subscriber_id = subscriber_id_for(app, "reader@example.com")
    assert live_subscriptions(app, subscriber_id) == {
        topics["data"]: "daily",
        topics["cyber-security"]: "daily",
    }
    [(confirmed_at, timezone, daily_hour)] = rows(
        app,
        select(Subscriber.confirmed_at, Subscriber.timezone, Subscriber.daily_hour).where(
            Subscriber.id == subscriber_id
        ),
    )
    assert confirmed_at is not None
    assert (timezone, daily_hour) == ("America/New_York", 18)

    [welcome] = mailbox.deliver()
    assert welcome["To"] == "reader@example.com"
    assert welcome["Subject"] == "You're subscribed: Cyber security, Data"
    assert "Data" in text_part(welcome) and "Cyber security" in html_part(welcome)
    assert welcome["List-Unsubscribe"].startswith("<https://alerts.test/unsubscribe/")
    assert "<mailto:unsubscribe@alerts.test?subject=" in welcome["List-Unsubscribe"]
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert link_path(welcome, "/manage/")
    assert link_path(welcome, "/unsubscribe/")


def test_confirming_needs_the_csrf_token(client, app, mailbox):
    seed_topics(app)
    path = sign_up_for_link(client, mailbox)
    client.get(path)
    before = stored_state(app)

    response = client.post(path)

    assert response.status_code == 400
    assert "this form has expired" in page_text(response)
    assert stored_state(app) == before


def test_confirming_twice_is_harmless(client, app, mailbox):
    topics = seed_topics(app)
    path = sign_up_for_link(client, mailbox, topics=["data", "cyber-security"])
    form = {"csrf_token": csrf_token(client, path)}
    assert client.post(path, data=form).status_code == 200

    again = client.post(path, data=form)  # the browser's back button, then the button again
    revisited = client.get(path)

    for response in (again, revisited):
        assert response.status_code == 200
        assert "Subscription confirmed" in page_text(response)
        assert "You had already confirmed this subscription" in page_text(response)
    subscriber_id = subscriber_id_for(app, "reader@example.com")
    assert sorted(subscription_history(app, subscriber_id)) == sorted(
        [(topics["data"], "daily", "live"), (topics["cyber-security"], "daily", "live")]
    )
    assert len(mailbox.deliver()) == 1


def test_two_clicks_at_once_send_one_welcome_email(app, mailbox, monkeypatch):
    """A double-click (or a mail scanner racing the reader) posts the link twice at once."""
    topics = seed_topics(app)
    path = sign_up_for_link(app.test_client(), mailbox)
    clients = [app.test_client(), app.test_client()]
    forms = [{"csrf_token": csrf_token(c, path)} for c in clients]

    # Both requests have loaded the unconfirmed signup before either starts to confirm it.
    both_loaded = threading.Barrier(2, timeout=30)
    real_confirm = services.confirm_signup

    def confirm_together(request: SignupRequest) -> bool:
        both_loaded.wait()
        return real_confirm(request)

    monkeypatch.setattr(services, "confirm_signup", confirm_together)
    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(lambda c, f: c.post(path, data=f), clients, forms))

    assert [r.status_code for r in responses] == [200, 200]
    texts = sorted(page_text(r) for r in responses)
    assert sum("already confirmed" in t for t in texts) == 1
    subscriber_id = subscriber_id_for(app, "reader@example.com")
    assert subscription_history(app, subscriber_id) == [(topics["data"], "daily", "live")]
    [welcome] = mailbox.deliver()
    assert "You're subscribed" in welcome["Subject"]


def _assert_link_problem(response, status: int) -> None:
    assert response.status_code == status
    text = page_text(response)
    html = response.get_data(as_text=True)
    expected = "This link has expired" if status == 410 else "This link does not work"
    assert expected in text
    assert "Sign up again" in text and 'href="/"' in html
    assert "Traceback" not in html


def test_confirm_link_expires_after_seven_days_by_default(client, app, mailbox):
    seed_topics(app)
    sign_up_for_link(client, mailbox)
    request_id = _request_id(app)
    week_old = signed_path(app, TokenPurpose.CONFIRM, request_id, age=timedelta(days=7, hours=1))
    before = stored_state(app)

    _assert_link_problem(client.get(week_old), 410)
    _assert_link_problem(post_form(client, week_old, csrf_from="/"), 410)

    assert stored_state(app) == before
    assert mailbox.deliver() == []
    six_days_old = signed_path(app, TokenPurpose.CONFIRM, request_id, age=timedelta(days=6))
    assert confirm(client, six_days_old).status_code == 200
    assert count(app, Subscription) == 1


def test_confirm_link_lifetime_is_configurable(make_app, app, mailbox):
    seed_topics(app)
    sign_up_for_link(app.test_client(), mailbox)
    two_hours_old = signed_path(app, TokenPurpose.CONFIRM, _request_id(app), age=timedelta(hours=2))
    strict = make_app(CONFIRM_TOKEN_MAX_AGE=3600)

    _assert_link_problem(strict.test_client().get(two_hours_old), 410)
    assert app.test_client().get(two_hours_old).status_code == 200


@pytest.mark.parametrize(
    "kind",
    ["tampered", "truncated", "manage token", "unsubscribe token", "unknown request", "other key"],
)
def test_bad_confirm_links_get_a_clear_page_and_change_nothing(
    kind, client, app, make_app, mailbox
):
    topics = seed_topics(app)
    path = sign_up_for_link(client, mailbox)
    request_id = _request_id(app)
    subscriber_id = subscriber_id_for(app, "reader@example.com")
    # Someone else's waiting signup: an edited link must not confirm it either.
    sign_up_for_link(app.test_client(), mailbox, "other@example.com")
    [other_request_id] = rows(app, select(SignupRequest.id).where(SignupRequest.id != request_id))
    other_key = make_app(SECRET_KEY="another-secret-key-nobody-here-signs-with-x")
    bad = {
        "tampered": lambda: tampered(path, other_request_id),
        "truncated": lambda: path[:-3],
        "manage token": lambda: "/confirm/" + manage_path(app, subscriber_id).split("/")[-1],
        "unsubscribe token": lambda: (
            "/confirm/" + unsubscribe_path(app, subscriber_id, [topics["data"]]).split("/")[-1]
        ),
        "unknown request": lambda: signed_path(app, TokenPurpose.CONFIRM, request_id + 1000),
        "other key": lambda: signed_path(other_key, TokenPurpose.CONFIRM, request_id),
    }[kind]()
    assert bad != path
    before = stored_state(app)

    _assert_link_problem(client.get(bad), 400)
    _assert_link_problem(post_form(client, bad, csrf_from="/"), 400)

    assert stored_state(app) == before
    assert mailbox.deliver() == []


def test_confirm_tokens_do_not_work_as_manage_or_unsubscribe_links(client, app, mailbox):
    seed_topics(app)
    path = sign_up_for_link(client, mailbox)
    token = path.split("/")[-1]
    before = stored_state(app)

    for response in (
        client.get(f"/manage/{token}"),
        client.get(f"/unsubscribe/{token}"),
        app.test_client().post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}),
    ):
        assert response.status_code == 400
        assert "This link does not work" in page_text(response)
    assert stored_state(app) == before


def test_confirming_a_new_frequency_ends_the_old_subscription_and_starts_a_new_one(
    client, app, mailbox
):
    topics = seed_topics(app)
    subscriber_id = create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
    path = sign_up_for_link(client, mailbox, topics=["data", "cyber-security"], frequency="weekly")

    assert confirm(client, path).status_code == 200

    history = subscription_history(app, subscriber_id)
    assert sorted(history, key=lambda row: row[0] != topics["data"]) == [
        (topics["data"], "daily", "frequency_changed"),
        (topics["data"], "weekly", "live"),
        (topics["cyber-security"], "weekly", "live"),
    ]
    [welcome] = mailbox.deliver()
    assert "a weekly email" in text_part(welcome)


def test_confirming_a_topic_already_followed_at_that_frequency_keeps_its_row(client, app, mailbox):
    topics = seed_topics(app)
    subscriber_id = create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
    [original_id] = rows(app, select(Subscription.id))
    path = sign_up_for_link(client, mailbox, topics=["data", "cyber-security"])

    assert confirm(client, path).status_code == 200

    assert rows(app, select(Subscription.id).where(Subscription.topic_id == topics["data"])) == [
        original_id
    ]
    assert live_subscriptions(app, subscriber_id) == {
        topics["data"]: "daily",
        topics["cyber-security"]: "daily",
    }


def test_the_database_keeps_one_live_subscription_per_subscriber_and_topic(app):
    topics = seed_topics(app)
    subscriber_id = create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
    with app.app_context():
        db.session.add(
            Subscription(subscriber_id=subscriber_id, topic_id=topics["data"], frequency="weekly")
        )
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()

        # Ended rows are history: any number of them may sit beside the live one.
        for frequency in ("weekly", "immediately"):
            db.session.add(
                Subscription(
                    subscriber_id=subscriber_id,
                    topic_id=topics["data"],
                    frequency=frequency,
                    ended_at=utcnow(),
                    ended_reason="frequency_changed",
                )
            )
        db.session.commit()
    assert count(app, Subscription) == 3
    assert live_subscriptions(app, subscriber_id) == {topics["data"]: "daily"}


def _erase(app, subscriber_id: int) -> None:
    with app.app_context():
        services.erase_subscriber(db.session.get(Subscriber, subscriber_id))
        db.session.commit()


def test_old_confirm_link_after_unsubscribing_says_so_and_subscribes_nobody(client, app, mailbox):
    seed_topics(app)
    path = sign_up_for_link(client, mailbox, topics=["data", "cyber-security"])
    confirm(client, path)
    [welcome] = mailbox.deliver()
    assert app.test_client().post(link_path(welcome, "/unsubscribe/")).status_code == 200
    subscriber_id = subscriber_id_for(app, "reader@example.com")
    before = stored_state(app)

    for response in (client.get(path), post_form(client, path, csrf_from="/")):
        assert response.status_code == 200
        text = page_text(response)
        assert "You're no longer subscribed" in text
        assert "you've since unsubscribed from: Cyber security Data" in text
        assert "Subscription confirmed" not in text and "You'll get" not in text
        assert "<title>You're no longer subscribed" in response.get_data(as_text=True)
    assert live_subscriptions(app, subscriber_id) == {}
    assert stored_state(app) == before
    assert mailbox.deliver() == []


def test_old_confirm_link_shows_the_subscriptions_as_they_are_now(client, app, mailbox):
    topics = seed_topics(app)
    path = sign_up_for_link(client, mailbox, topics=["data", "cyber-security"], frequency="daily")
    confirm(client, path)
    mailbox.deliver()
    subscriber_id = subscriber_id_for(app, "reader@example.com")
    app.test_client().post(unsubscribe_path(app, subscriber_id, [topics["data"]]))
    with app.app_context():
        subscriber = db.session.get(Subscriber, subscriber_id)
        services.subscribe(subscriber, topics["cyber-security"], services.Frequency.WEEKLY)
        db.session.commit()

    text = page_text(client.get(path))

    assert "Subscription confirmed" in text
    assert "You had already confirmed this subscription" in text
    assert "You get a weekly email about: Cyber security" in text
    assert "You've since stopped emails about: Data" in text
    assert "a daily email" not in text


def test_erasure_deletes_signup_requests_and_their_confirm_links_stop_working(client, app, mailbox):
    seed_topics(app)
    confirmed_path = sign_up_for_link(client, mailbox, topics=["data"])
    confirm(client, confirmed_path)
    mailbox.deliver()
    pending_path = sign_up_for_link(client, mailbox, topics=["cyber-security"])
    subscriber_id = subscriber_id_for(app, "reader@example.com")
    assert count(app, SignupRequest) == 2

    _erase(app, subscriber_id)

    assert count(app, SignupRequest) == 0
    for path in (confirmed_path, pending_path):
        _assert_link_problem(client.get(path), 400)
        _assert_link_problem(post_form(client, path, csrf_from="/"), 400)
    assert live_subscriptions(app, subscriber_id) == {}
    assert mailbox.deliver() == []


def test_confirm_link_of_an_erased_subscriber_whose_request_survived_does_not_work(
    client, app, mailbox
):
    """Requests confirmed before erasure deleted them all may still be stored."""
    seed_topics(app)
    path = sign_up_for_link(client, mailbox)
    confirm(client, path)
    subscriber_id = subscriber_id_for(app, "reader@example.com")
    with app.app_context():
        db.session.get(Subscriber, subscriber_id).erased_at = utcnow()
        db.session.commit()

    _assert_link_problem(client.get(path), 400)
    _assert_link_problem(post_form(client, path, csrf_from="/"), 400)


def test_confirming_many_topics_costs_the_statements_one_topic_does(client, app, mailbox):
    """The subscriptions a confirmation starts go in together: no statement per topic
    (a signup for every topic must not cost the database more round trips than one)."""
    topics = seed_topics(app)
    one = sign_up_for_link(client, mailbox, "one@example.com", topics=["data"])
    every = sign_up_for_link(client, mailbox, "every@example.com", topics=sorted(topics))
    statements: list[str] = []

    def count_statements(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    costs = {}
    with app.app_context():
        engine = db.engine
    for name, path in (("one", one), ("every", every)):
        token = csrf_token(client, path)
        event.listen(engine, "before_cursor_execute", count_statements)
        try:
            response = client.post(path, data={"csrf_token": token})
        finally:
            event.remove(engine, "before_cursor_execute", count_statements)
        assert response.status_code == 200, page_text(response)
        assert "Subscription confirmed" in page_text(response)
        costs[name] = len(statements)
        statements.clear()
    page = page_text(response)
    with app.app_context():
        names = [db.session.get(Topic, topic_id).name for topic_id in topics.values()]
    assert all(name in page for name in names)
    assert len(live_subscriptions(app, subscriber_id_for(app, "every@example.com"))) == len(topics)
    assert costs["every"] == costs["one"], costs


def test_confirm_link_whose_topics_were_all_retired_confirms_nothing(client, app, mailbox):
    seed_topics(app)
    path = sign_up_for_link(client, mailbox, "retired@example.org", topics=["data"])
    with app.app_context():
        db.session.execute(update(Topic).where(Topic.slug == "data").values(retired_at=utcnow()))
        db.session.commit()
    before = stored_state(app)

    for response in (client.get(path), post_form(client, path, csrf_from="/")):
        assert response.status_code == 200
        text = page_text(response)
        assert "None of the topics you asked for can be subscribed to any more" in text
        assert "Sign up again" in text and "Cyber security" in text
        assert "Subscription confirmed" not in text and "You'll get" not in text
        assert "You asked for" not in text
        html = response.get_data(as_text=True)
        assert "<title>These topics are no longer available" in html
        assert "Confirm subscription</button>" not in html
        assert 'href="/?topic=cyber-security"' in html
    assert stored_state(app) == before
    [(confirmed_at, request_confirmed_at)] = rows(
        app,
        select(Subscriber.confirmed_at, SignupRequest.confirmed_at).join(
            SignupRequest, SignupRequest.subscriber_id == Subscriber.id
        ),
    )
    assert (confirmed_at, request_confirmed_at) == (None, None)
    assert count(app, Subscription) == 0
    assert mailbox.deliver() == []


def test_signing_up_again_while_paused_says_emails_are_paused(client, app, mailbox):
    seed_topics(app)
    confirm(client, sign_up_for_link(client, mailbox, topics=["data"], frequency="daily"))
    mailbox.deliver()
    subscriber_id = subscriber_id_for(app, "reader@example.com")
    until = services.latest_pause_date(datetime.now(ZoneInfo("Europe/London")).date())
    paused = post_form(
        client,
        f"{manage_path(app, subscriber_id)}/pause",
        {"until-day": until.day, "until-month": until.month, "until-year": until.year},
        csrf_from=manage_path(app, subscriber_id),
        follow_redirects=True,
    )
    assert f"Your emails are paused until {until.day} {until:%B %Y}" in page_text(paused)
    note = f"Your emails are paused until {until.day} {until:%B %Y}, so you won't get any"

    path = sign_up_for_link(client, mailbox, topics=["cyber-security"], frequency="weekly")
    response = confirm(client, path)

    assert response.status_code == 200
    text = page_text(response)
    assert "Subscription confirmed" in text
    assert "You'll get a weekly email about: Cyber security" in text
    assert note in text.replace("&#39;", "'")
    [welcome] = mailbox.deliver()
    assert welcome["Subject"] == "You're subscribed: Cyber security"
    assert note in text_part(welcome)
    assert note in " ".join(html_part(welcome).replace("&#39;", "'").split())
    [paused_until] = rows(app, select(Subscriber.paused_until))
    assert paused_until == until
    assert "paused" in page_text(client.get(path))  # the old link, opened again, too
