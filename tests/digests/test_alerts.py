from __future__ import annotations

from sqlalchemy import select, update

from alertsvc.extensions import db
from alertsvc.models import AlertDelivery, Article, OutboxEmail, Topic, utcnow
from tests.digests.helpers import alerts, at, digest, start_subscriptions_at
from tests.factories import count, create_article, create_subscriber, rows, seed_topics
from tests.mail import html_part, link_path, text_part
from tests.subscriptions.helpers import page_text, post_form


def test_one_alert_per_subscriber_per_article_however_many_topics(app, client, mailbox):
    topics = seed_topics(app)
    both = create_subscriber(
        app,
        "both@example.com",
        {topics["data"]: "immediately", topics["cyber-security"]: "immediately"},
    )
    daily = create_subscriber(app, "daily@example.com", {topics["data"]: "daily"})
    for subscriber in (both, daily):
        start_subscriptions_at(app, subscriber, at("2026-11-25T07:00"))
    create_article(
        app,
        "Breach at a council",
        [topics["data"], topics["cyber-security"]],
        at("2026-11-25T09:00"),
        summary="<p>Systems <strong>offline</strong>.</p>",
        alerted=False,
    )
    result = alerts(app, at("2026-11-25T09:01"))
    assert (result.articles, result.emails) == (1, 1)
    assert alerts(app, at("2026-11-25T09:02")).emails == 0, "each article is alerted once"

    [message] = mailbox.deliver()
    assert message["To"] == "both@example.com"
    assert message["Subject"] == "Breach at a council"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "<strong>offline</strong>" in html_part(message)
    assert "Systems offline." in text_part(message)
    assert "https://news.example/breach-at-a-council" in text_part(message)
    assert client.get(link_path(message, "/manage/")).status_code == 200
    assert rows(app, select(Article.alerts_processed_at.is_not(None))) == [True]


def test_subscribers_who_joined_after_the_article_or_are_paused_get_nothing(app):
    topics = seed_topics(app)
    late = create_subscriber(app, "late@example.com", {topics["data"]: "immediately"})
    start_subscriptions_at(app, late, at("2026-11-25T10:00"))
    paused = create_subscriber(
        app,
        "paused@example.com",
        {topics["data"]: "immediately"},
        pause_ends_at=at("2026-12-01T00:00"),
    )
    start_subscriptions_at(app, paused, at("2026-11-20T10:00"))
    create_article(app, "News", [topics["data"]], at("2026-11-25T09:00"), alerted=False)
    assert alerts(app, at("2026-11-25T10:01")).emails == 0


def test_daily_cap_rolls_the_rest_into_the_next_daily_digest(make_app, app, mailbox):
    capped = make_app(ALERTS_DAILY_CAP=2)
    topics = seed_topics(app)
    reader = create_subscriber(app, "reader@example.com", {topics["data"]: "immediately"})
    start_subscriptions_at(app, reader, at("2026-11-25T00:00"))
    for hour, title in ((9, "First"), (10, "Second"), (11, "Third"), (12, "Fourth")):
        create_article(app, title, [topics["data"]], at(f"2026-11-25T{hour:02d}:00"), alerted=False)
        alerts(capped, at(f"2026-11-25T{hour:02d}:01"))

    sent = {m["Subject"]: text_part(m) for m in mailbox.deliver()}
    assert set(sent) == {"First", "Second"}
    assert "last instant alert today" not in sent["First"]
    assert "last instant alert today" in sent["Second"]
    assert count(app, AlertDelivery, AlertDelivery.carried_over.is_(True)) == 2

    result = digest(capped, "daily", at("2026-11-26T07:00"))
    assert result.emails == 1
    [held] = mailbox.deliver()
    text = text_part(held)
    assert "Third" in text and "Fourth" in text and "First" not in text
    assert "reached your daily limit" in text
    assert held["List-Unsubscribe"] is not None
    assert digest(capped, "daily", at("2026-11-27T07:00")).emails == 0, "held alerts go out once"

    create_article(app, "Next day", [topics["data"]], at("2026-11-26T09:00"), alerted=False)
    assert alerts(capped, at("2026-11-26T09:01")).emails == 1, "the cap resets each local day"


def test_major_update_alerts_again_once(app, mailbox):
    topics = seed_topics(app)
    reader = create_subscriber(app, "reader@example.com", {topics["data"]: "immediately"})
    start_subscriptions_at(app, reader, at("2026-11-25T00:00"))
    article_id = create_article(
        app, "Story", [topics["data"]], at("2026-11-25T09:00"), alerted=False
    )
    alerts(app, at("2026-11-25T09:01"))
    from alertsvc.extensions import db

    with app.app_context():
        article = db.session.get(Article, article_id)
        article.revision += 1
        article.major_update_at = at("2026-11-25T11:00")
        article.alerts_processed_at = None
        db.session.commit()
    assert alerts(app, at("2026-11-25T11:01")).emails == 1
    assert alerts(app, at("2026-11-25T11:02")).emails == 0
    subjects = sorted(m["Subject"] for m in mailbox.deliver())
    assert subjects == ["Story", "Updated: Story"]


def test_old_articles_imported_late_are_not_alerted(app):
    topics = seed_topics(app)
    reader = create_subscriber(app, "reader@example.com", {topics["data"]: "immediately"})
    start_subscriptions_at(app, reader, at("2026-11-01T00:00"))
    create_article(
        app,
        "From the archive",
        [topics["data"]],
        at("2026-11-25T09:00"),
        published=at("2020-01-01T00:00"),
        alerted=False,
    )
    result = alerts(app, at("2026-11-25T09:01"))
    assert (result.articles, result.emails) == (1, 0)
    assert count(app, OutboxEmail) == 0


def _reach_the_cap(capped, app, topics, titles: list[tuple[str, str]]) -> None:
    """Publish ``titles`` (title, topic slug) an hour apart on 25 November, alerting each."""
    for hour, (title, slug) in enumerate(titles, start=9):
        create_article(app, title, [topics[slug]], at(f"2026-11-25T{hour:02d}:00"), alerted=False)
        alerts(capped, at(f"2026-11-25T{hour:02d}:01"))


def test_held_back_alerts_of_a_topic_left_are_not_in_the_daily_email(make_app, app, mailbox):
    capped = make_app(ALERTS_DAILY_CAP=2)
    topics = seed_topics(app)
    reader = create_subscriber(
        app,
        "reader@example.com",
        {
            topics["data"]: "immediately",
            topics["cyber-security"]: "immediately",
            topics["digital-government"]: "immediately",
        },
    )
    start_subscriptions_at(app, reader, at("2026-11-25T00:00"))
    _reach_the_cap(
        capped,
        app,
        topics,
        [
            ("Data one", "data"),
            ("Data two", "data"),
            ("Held data one", "data"),
            ("Held data two", "data"),
            ("Held breach", "cyber-security"),
        ],
    )
    sent = {m["Subject"]: m for m in mailbox.deliver()}
    assert set(sent) == {"Data one", "Data two"}
    assert count(app, AlertDelivery, AlertDelivery.carried_over.is_(True)) == 3

    left = app.test_client().post(link_path(sent["Data two"], "/unsubscribe/"))
    assert left.status_code == 200
    assert "You won't get any more emails about: Data" in page_text(left)

    assert digest(capped, "daily", at("2026-11-26T07:00")).emails == 1
    [daily] = mailbox.deliver()
    text = text_part(daily)
    assert "ALERTS HELD BACK TODAY" in text
    assert "Held breach" in text and "Held breach" in html_part(daily)
    assert "Held data" not in text and "Held data" not in html_part(daily)
    assert "Data" not in daily["Subject"]


def test_no_held_back_alerts_after_leaving_every_topic_or_the_topic_retiring(
    make_app, app, mailbox
):
    capped = make_app(ALERTS_DAILY_CAP=1)
    topics = seed_topics(app)
    leaver = create_subscriber(app, "leaver@example.com", {topics["data"]: "immediately"})
    stayer = create_subscriber(app, "stayer@example.com", {topics["cyber-security"]: "immediately"})
    for subscriber in (leaver, stayer):
        start_subscriptions_at(app, subscriber, at("2026-11-25T00:00"))
    _reach_the_cap(
        capped,
        app,
        topics,
        [
            ("Data sent", "data"),
            ("Breach sent", "cyber-security"),
            ("Held data", "data"),
            ("Held breach", "cyber-security"),
        ],
    )
    sent = {m["To"]: m for m in mailbox.deliver()}
    assert set(sent) == {"leaver@example.com", "stayer@example.com"}
    manage = link_path(sent["leaver@example.com"], "/manage/")
    left = post_form(app.test_client(), f"{manage}/unsubscribe-all")
    assert left.status_code == 200, page_text(left)
    assert "You won't get any more email alerts from us" in page_text(left)
    with app.app_context():
        db.session.execute(
            update(Topic).where(Topic.slug == "cyber-security").values(retired_at=utcnow())
        )
        db.session.commit()

    assert digest(capped, "daily", at("2026-11-26T07:00")).emails == 0
    assert mailbox.deliver() == []
