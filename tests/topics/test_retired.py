"""A retired topic: not offered to readers for new choices, joined by no new article (feed
topics, category mappings, keyword queries, a sender's slugs), while the subscriptions it
has stay on record."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import update

from alertsvc.articles.services import ArticleInput, ingest_articles
from alertsvc.extensions import db
from alertsvc.models import ArticleSource, Topic, utcnow
from alertsvc.topics.services import add_topic, map_category
from tests.articles.helpers import articles
from tests.factories import (
    create_feed,
    create_subscriber,
    live_subscriptions,
    seed_topics,
    subscriber_id_for,
)
from tests.subscriptions.helpers import (
    confirm,
    manage_path,
    page_form,
    page_text,
    post_signup,
    sign_up_for_link,
    submit,
)


def _retire(app: Flask, *slugs: str) -> None:
    with app.app_context():
        db.session.execute(update(Topic).where(Topic.slug.in_(slugs)).values(retired_at=utcnow()))
        db.session.commit()


def test_the_signup_form_does_not_offer_a_retired_topic(client, app: Flask):
    seed_topics(app)
    _retire(app, "data")
    text = page_text(client.get("/"))
    assert "Cyber security" in text and "Data" not in text.replace("Digital", "")
    response = post_signup(client, topics=["data"])
    assert response.status_code == 400
    assert "Select topics from the list" in page_text(response)


def test_a_confirm_link_does_not_subscribe_to_a_topic_retired_since(client, app: Flask, mailbox):
    topics = seed_topics(app)
    path = sign_up_for_link(client, mailbox, topics=["data", "cyber-security"])
    _retire(app, "data")
    confirm(client, path)
    subscriber = subscriber_id_for(app, "reader@example.com")
    assert live_subscriptions(app, subscriber) == {topics["cyber-security"]: "daily"}


def test_the_manage_page_lets_a_follower_stop_a_retired_topic_but_not_start_or_change_it(
    client, app: Flask
):
    topics = seed_topics(app)
    follower = create_subscriber(
        app, "follower@example.com", {topics["data"]: "weekly", topics["local-digital"]: "daily"}
    )
    other = create_subscriber(app, "other@example.com", {topics["local-digital"]: "daily"})
    _retire(app, "data")

    other_path = manage_path(app, other)
    assert "topic-data" not in page_form(client.get(other_path), other_path)
    path = manage_path(app, follower)
    assert page_form(client.get(path), path)["topic-data"] == "weekly"
    assert "Data (no longer offered)" in page_text(client.get(path))

    submit(client, path, {"topic-data": "immediately"})
    assert live_subscriptions(app, follower)[topics["data"]] == "weekly", "no change"
    submit(client, other_path, {"topic-data": "daily"})
    assert topics["data"] not in live_subscriptions(app, other), "cannot start it"

    submit(client, path, {"topic-data": "none"})
    assert live_subscriptions(app, follower) == {topics["local-digital"]: "daily"}


def test_no_new_article_joins_a_retired_topic_however_it_would(app: Flask):
    topics = seed_topics(app)
    feed_id = create_feed(app, "https://feeds.example/rss", ["data", "cyber-security"])
    with app.app_context():
        add_topic("nhs", "NHS", query="NHS")
        map_category("Councils", "local-digital")
        db.session.commit()
    _retire(app, "data", "nhs", "local-digital")
    follower = create_subscriber(app, "f@example.com", {topics["data"]: "daily"})
    with app.app_context():
        ingest_articles(
            [
                ArticleInput(
                    title="NHS councils", url="https://news.example/1", categories=["Councils"]
                )
            ],
            ArticleSource.FEED,
            feed_id=feed_id,
        )
        ingest_articles(
            [
                ArticleInput(
                    title="NHS by API",
                    url="https://news.example/2",
                    topics=["data", "police-and-justice"],
                )
            ],
            ArticleSource.API,
        )
        db.session.commit()
    assert [(a["title"], a["topics"]) for a in articles(app)] == [
        ("NHS councils", ["cyber-security"]),
        ("NHS by API", ["police-and-justice"]),
    ]
    assert live_subscriptions(app, follower) == {topics["data"]: "daily"}, "kept"
