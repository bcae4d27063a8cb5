"""Every kind of email alertsvc sends, queued with realistic and hostile content.

Shared by the header, spam-score and text/HTML tests: each queues the seven emails, lets the
real worker build and write them (the file transport's ``.eml``), and checks what came out.
"""

from __future__ import annotations

from flask import Flask

from alertsvc.database import transaction
from alertsvc.delivery.outbox import queue_email
from tests.digests.helpers import alerts, at, digest, start_subscriptions_at
from tests.factories import create_article, create_subscriber, seed_topics

# A feed's title trying to add a recipient, and one in Welsh with accents.
HOSTILE_TITLE = (
    "Councils warned over ransomware \r\nBcc: victim@evil.example\r\n"
    "X-Injected: yes <script>alert(1)</script> & “smart quotes” in a very long headline "
    "that goes on about procurement, cloud hosting and the spending review for a while"
)
WELSH_TITLE = "Gwasanaethau digidol: Cymraeg â'r ŵyl"
SUMMARY = (
    "<p>The <strong>department</strong> published its <em>annual report</em> on "
    "digital services today. <a href='https://gov.example/report'>Read the report</a>."
    "<script>steal()</script></p><ul><li>Cloud spending rose</li><li>Two new teams</li></ul>"
)

# Templates in the order ``queue_every_email`` queues them (the mailbox's order).
TEMPLATES = (
    "confirm",
    "manage_link",
    "subscribed",
    "already_subscribed",
    "alert",
    "digest-daily",
    "digest-weekly",
)


def queue_every_email(app: Flask) -> None:
    """Queue one of each email, in ``TEMPLATES`` order: the transactional ones as the
    subscription services queue them, alerts and digests through the real planners."""
    topics = seed_topics(app)
    names = ["Data", "Cyber security", "Digital government"]
    several = [topics["data"], topics["cyber-security"], topics["digital-government"]]
    reader = create_subscriber(app, "reader@example.com")
    with app.app_context(), transaction():
        queue_email(
            template="confirm",
            to_address="reader@example.com",
            subject=f"Confirm your email alerts: {', '.join(names)}",
            context={
                "confirm_url": "https://alerts.example.org/confirm/InR0IjoxfQ.aBcDeF",
                "topic_names": names,
                "frequency": "daily",
            },
            subscriber_id=reader,
        )
        queue_email(
            template="manage_link",
            to_address="reader@example.com",
            subject="Manage your email alerts",
            subscriber_id=reader,
        )
        queue_email(
            template="subscribed",
            to_address="reader@example.com",
            subject=f"You're subscribed: {', '.join(names)}",
            context={"topic_names": names, "frequency": "daily"},
            subscriber_id=reader,
            unsubscribe_topic_ids=several,
        )
        queue_email(
            template="already_subscribed",
            to_address="reader@example.com",
            subject="You're already subscribed",
            context={"topic_names": names, "frequency": "weekly"},
            subscriber_id=reader,
        )

    instant = create_subscriber(app, "instant@example.com", {topics["data"]: "immediately"})
    daily = create_subscriber(app, "daily@example.com", {topic: "daily" for topic in several})
    weekly = create_subscriber(app, "weekly@example.com", {topic: "weekly" for topic in several})
    for subscriber in (instant, daily, weekly):
        start_subscriptions_at(app, subscriber, at("2026-11-22T07:00"))
    create_article(
        app,
        WELSH_TITLE,
        several,
        at("2026-11-24T09:00"),
        summary=SUMMARY,
        url="https://news.example/cymraeg",
    )
    create_article(
        app,
        "Open data strategy published",
        [topics["data"]],
        at("2026-11-24T10:00"),
        summary="<p>A plan for <b>open data</b> across government.</p>",
    )
    create_article(
        app,
        "NCSC guidance for local councils",
        [topics["cyber-security"]],
        at("2026-11-24T11:00"),
        summary="Short guidance on patching and backups.",
    )
    create_article(
        app,
        HOSTILE_TITLE,
        [topics["data"]],
        at("2026-11-25T06:00"),
        summary=SUMMARY,
        url="https://news.example/ransomware",
        alerted=False,
    )
    assert alerts(app, at("2026-11-25T06:01")).emails == 1
    assert digest(app, "daily", at("2026-11-25T07:00")).emails == 1
    assert digest(app, "weekly", at("2026-11-30T07:00")).emails == 1
