from __future__ import annotations

import re

from sqlalchemy import select

from alertsvc.models import DigestDelivery, DigestRun, EmailBody, OutboxEmail, Subscription
from tests.digests.helpers import RECIPIENT, at, digest, start_subscriptions_at
from tests.factories import count, create_article, create_subscriber, rows, seed_topics
from tests.mail import html_part, link_path, text_part


def test_one_combined_digest_with_each_article_once(app, client, mailbox):
    topics = seed_topics(app)
    reader = create_subscriber(
        app,
        "reader@example.com",
        {
            topics["data"]: "daily",
            topics["cyber-security"]: "daily",
            topics["local-digital"]: "weekly",
        },
    )
    start_subscriptions_at(app, reader, at("2026-11-24T07:00"))
    both = create_article(
        app,
        "Councils hit by ransomware",
        [topics["data"], topics["cyber-security"]],
        at("2026-11-24T12:00"),
    )
    create_article(app, "Open data strategy published", [topics["data"]], at("2026-11-24T15:00"))
    create_article(
        app, "Local digital fund opens", [topics["local-digital"]], at("2026-11-24T16:00")
    )
    create_article(app, "Too late for this run", [topics["data"]], at("2026-11-25T07:30"))

    result = digest(app, "daily", at("2026-11-25T07:00"))
    assert (result.subscribers, result.emails) == (1, 1)

    [message] = mailbox.deliver()
    assert message["To"] == "reader@example.com"
    assert message["Subject"] == "Daily email alert: 2 new articles on Cyber security, Data"
    text = text_part(message)
    assert text.count("Councils hit by ransomware") == 1
    assert "Open data strategy published" in text
    assert "Local digital fund opens" not in text  # weekly topic: not in the daily digest
    assert "Too late for this run" not in text
    assert text.index("CYBER SECURITY") < text.index("Councils hit") < text.index("DATA")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "placeholder" not in text and "placeholder" not in html_part(message)

    manage = link_path(message, "/manage/")
    assert client.get(manage).status_code == 200
    unsubscribe = link_path(message, "/unsubscribe/")
    assert client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    live = rows(app, select(Subscription.topic_id).where(Subscription.ended_at.is_(None)))
    assert live == [topics["local-digital"]], "only the digest's topics end"
    assert both


def test_an_article_in_a_daily_and_a_weekly_topic_comes_once_in_each_digest(app, mailbox):
    """Each digest covers every topic followed at its frequency: an article in a topic read
    daily and in one read weekly is in the daily digest and, for the weekly topic, in the
    weekly one, once in each; neither digest sends it again later."""
    topics = seed_topics(app)
    reader = create_subscriber(
        app,
        "reader@example.com",
        {topics["cyber-security"]: "daily", topics["data"]: "weekly"},
    )
    start_subscriptions_at(app, reader, at("2026-11-22T12:00"))
    create_article(
        app,
        "Councils hit by ransomware",
        [topics["data"], topics["cyber-security"]],
        at("2026-11-24T12:00"),
    )

    assert digest(app, "daily", at("2026-11-25T07:00")).emails == 1
    assert digest(app, "daily", at("2026-11-26T07:00")).emails == 0
    assert digest(app, "weekly", at("2026-11-30T07:00")).emails == 1  # Monday
    assert digest(app, "weekly", at("2026-12-07T07:00")).emails == 0

    texts = {message["Subject"]: text_part(message) for message in mailbox.deliver()}
    assert sorted(texts) == [
        "Daily email alert: 1 new article on Cyber security",
        "Weekly email alert: 1 new article on Data",
    ]
    for text in texts.values():
        assert text.count("Councils hit by ransomware") == 1


def test_no_new_articles_means_no_email(app, mailbox):
    topics = seed_topics(app)
    reader = create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
    start_subscriptions_at(app, reader, at("2026-11-24T07:00"))
    create_article(app, "Cyber only", [topics["cyber-security"]], at("2026-11-24T12:00"))
    result = digest(app, "daily", at("2026-11-25T07:00"))
    assert (result.subscribers, result.emails) == (1, 0)
    assert mailbox.deliver() == []
    assert count(app, DigestRun) == 1


def test_running_a_run_again_queues_nothing_more(app, mailbox):
    topics = seed_topics(app)
    reader = create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
    start_subscriptions_at(app, reader, at("2026-11-24T07:00"))
    create_article(app, "One", [topics["data"]], at("2026-11-24T12:00"))
    first = digest(app, "daily", at("2026-11-25T07:00"))
    again = digest(app, "daily", at("2026-11-25T07:20"))
    assert first.emails == 1
    assert again.already_planned and again.emails == 0
    assert count(app, OutboxEmail) == 1 and count(app, DigestDelivery) == 1


def test_windows_chain_from_one_digest_to_the_next(app, mailbox):
    topics = seed_topics(app)
    reader = create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
    start_subscriptions_at(app, reader, at("2026-11-24T07:00"))
    create_article(app, "Monday news", [topics["data"]], at("2026-11-24T12:00"))
    digest(app, "daily", at("2026-11-25T07:00"))
    create_article(app, "Tuesday news", [topics["data"]], at("2026-11-25T09:00"))
    digest(app, "daily", at("2026-11-26T07:00"))
    texts = [text_part(message) for message in mailbox.deliver()]
    assert len(texts) == 2
    assert sorted(("Monday news" in t, "Tuesday news" in t) for t in texts) == [
        (False, True),
        (True, False),
    ]


def test_each_subscriber_gets_their_own_hour_and_timezone(app):
    topics = seed_topics(app)
    start = at("2026-11-24T00:00")
    at_seven = create_subscriber(app, "seven@example.com", {topics["data"]: "daily"}, daily_hour=7)
    at_eight = create_subscriber(app, "eight@example.com", {topics["data"]: "daily"}, daily_hour=8)
    in_new_york = create_subscriber(
        app, "ny@example.com", {topics["data"]: "daily"}, daily_hour=7, timezone="America/New_York"
    )
    for subscriber in (at_seven, at_eight, in_new_york):
        start_subscriptions_at(app, subscriber, start)
    create_article(app, "News", [topics["data"]], at("2026-11-24T12:00"))
    served = {}
    for hour in range(24):
        window_end = at(f"2026-11-25T{hour:02d}:00")
        digest(app, "daily", window_end)
        for email in rows(app, select(RECIPIENT).where(RECIPIENT.not_in(served))):
            served[email] = hour
    assert served == {"seven@example.com": 7, "eight@example.com": 8, "ny@example.com": 12}


def test_weekly_digest_arrives_on_the_chosen_day(app):
    topics = seed_topics(app)
    reader = create_subscriber(
        app, "reader@example.com", {topics["data"]: "weekly"}, weekly_day=2, weekly_hour=9
    )
    start_subscriptions_at(app, reader, at("2026-11-18T09:00"))
    create_article(app, "News", [topics["data"]], at("2026-11-20T12:00"))
    assert digest(app, "weekly", at("2026-11-24T09:00")).emails == 0  # Tuesday
    assert digest(app, "weekly", at("2026-11-25T08:00")).emails == 0  # Wednesday, wrong hour
    assert digest(app, "weekly", at("2026-11-25T09:00")).emails == 1  # Wednesday 09:00


def test_hostile_titles_are_escaped(app, mailbox):
    topics = seed_topics(app)
    reader = create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
    start_subscriptions_at(app, reader, at("2026-11-24T07:00"))
    create_article(
        app,
        '<script>alert("x")</script> & <b>bold</b>',
        [topics["data"]],
        at("2026-11-24T12:00"),
        url="javascript:alert(1)",
        summary=(
            '<p onclick="evil()">Summary <script>bad()</script><a href="javascript:x">link</a></p>'
        ),
    )
    digest(app, "daily", at("2026-11-25T07:00"))
    [message] = mailbox.deliver()
    html = html_part(message)
    assert "<script>" not in html and "onclick" not in html and "javascript:" not in html
    assert "&lt;script&gt;alert(" in html
    assert '<script>alert("x")</script> & <b>bold</b>' in text_part(message)


def test_bodies_are_rendered_once_per_distinct_content(app):
    topics = seed_topics(app)
    start = at("2026-11-24T07:00")
    for number in range(30):
        chosen = {topics["data"]: "daily"} if number % 3 else {topics["cyber-security"]: "daily"}
        start_subscriptions_at(app, create_subscriber(app, f"r{number}@example.com", chosen), start)
    create_article(app, "Data news", [topics["data"]], at("2026-11-24T12:00"))
    create_article(app, "Cyber news", [topics["cyber-security"]], at("2026-11-24T12:00"))
    result = digest(app, "daily", at("2026-11-25T07:00"))
    assert result.emails == 30
    assert count(app, EmailBody) == 2
    assert result.bodies == 2


def test_dry_run_writes_nothing(app):
    topics = seed_topics(app)
    reader = create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
    start_subscriptions_at(app, reader, at("2026-11-24T07:00"))
    create_article(app, "News", [topics["data"]], at("2026-11-24T12:00"))
    result = digest(app, "daily", at("2026-11-25T07:00"), dry_run=True)
    assert (result.subscribers, result.emails) == (1, 1)
    assert result.preview == [("reader@example.com", "Data", 1)]
    assert count(app, DigestRun) == 0 and count(app, OutboxEmail) == 0
    assert digest(app, "daily", at("2026-11-25T07:00")).emails == 1


def test_a_blockquote_in_a_summary_survives_into_the_digest_email(app, mailbox):
    """One allow-list (alertsvc/html.py) for ingestion and rendering: the README promises
    block quotes, and the digest used to drop them."""
    topics = seed_topics(app)
    reader = create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
    start_subscriptions_at(app, reader, at("2026-11-24T07:00"))
    create_article(
        app,
        "Minister on data",
        [topics["data"]],
        at("2026-11-24T12:00"),
        summary="<p>She said:</p><blockquote><p>Data saves lives.</p></blockquote>",
    )
    digest(app, "daily", at("2026-11-25T07:00"))
    [message] = mailbox.deliver()
    quoted = re.search(r"<blockquote[^>]*>(.*?)</blockquote>", html_part(message), re.S)
    assert quoted is not None, "the block quote was dropped"
    assert "Data saves lives." in quoted.group(1)
    assert "Data saves lives." in text_part(message)
