"""A link fills in the signup form: ``/?email=…&topic=SLUG``, and the Register For Alerts box."""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest
from sqlalchemy import update

from alertsvc.extensions import db
from alertsvc.models import SignupRequest, Subscriber, Subscription, Topic
from tests.factories import count, create_article, seed_topics
from tests.subscriptions.helpers import page_text

HOSTILE = [
    '"><script>alert(1)</script>',
    "javascript:alert(1)",
    "' onmouseover='alert(1)",
    '<img src=x onerror="alert(1)">',
]


class _Inputs(HTMLParser):
    """Every ``<input>``'s attributes, and every tag name, as a browser would read them."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[dict[str, str | None]] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "input":
            self.inputs.append(dict(attrs))


def inputs(response) -> _Inputs:
    parser = _Inputs()
    parser.feed(response.get_data(as_text=True))
    return parser


def ticked_topics(response) -> list[str]:
    return [
        str(i["value"])
        for i in inputs(response).inputs
        if i.get("name") == "topics" and "checked" in i
    ]


def email_value(response) -> str | None:
    [field] = [i for i in inputs(response).inputs if i.get("name") == "email"]
    return field.get("value")


def retire(app, slug: str) -> None:
    with app.app_context():
        db.session.execute(
            update(Topic).where(Topic.slug == slug).values(retired_at=datetime.now(UTC))
        )
        db.session.commit()


def test_a_link_fills_in_the_address_and_ticks_its_topics(client, app):
    seed_topics(app)
    query = urlencode(
        [("email", "reader@example.com"), ("topic", "data"), ("topic", "cyber-security")]
    )
    response = client.get(f"/?{query}")
    assert response.status_code == 200
    assert email_value(response) == "reader@example.com"
    assert sorted(ticked_topics(response)) == ["cyber-security", "data"]
    assert "There is a problem" not in page_text(response)


def test_without_a_link_nothing_is_filled_in(client, app):
    seed_topics(app)
    response = client.get("/")
    assert ticked_topics(response) == []
    assert not email_value(response)


def test_unknown_retired_and_repeated_topics_are_ignored(client, app):
    seed_topics(app)
    retire(app, "health-and-care")
    query = urlencode(
        [("topic", "data")] * 5000 + [("topic", "no-such-topic"), ("topic", "health-and-care")]
    )
    response = client.get(f"/?{query}")
    assert response.status_code == 200
    assert ticked_topics(response) == ["data"]
    assert "no-such-topic" not in response.get_data(as_text=True)


def test_only_the_first_topic_values_are_read(client, app):
    seed_topics(app)
    query = urlencode([("topic", f"junk-{n}") for n in range(60)] + [("topic", "data")])
    assert ticked_topics(client.get(f"/?{query}")) == []


def test_an_invalid_or_huge_address_shows_no_error_until_the_form_is_sent(client, app):
    seed_topics(app)
    response = client.get("/?email=not-an-address&topic=data")
    assert response.status_code == 200
    assert email_value(response) == "not-an-address"
    assert "There is a problem" not in page_text(response)
    assert "Error:" not in page_text(response)

    huge = client.get("/?" + urlencode({"email": "a" * 5000 + "@example.com"}))
    assert huge.status_code == 200
    assert not email_value(huge)


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_escaped_never_markup(client, app, value):
    seed_topics(app)
    response = client.get("/?" + urlencode([("email", value), ("topic", value)]))
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    if any(character in value for character in "<>\"'"):
        assert value not in body
    assert "<script" not in body and "<img" not in body
    # Shown back as the text in the address field, and nowhere else.
    assert email_value(response) == value
    parsed = inputs(response)
    elsewhere = [
        (tag, name, text)
        for tag, attrs in parsed.tags
        for name, text in attrs.items()
        if value in (text or "") and not (tag == "input" and attrs.get("name") == "email")
    ]
    assert elsewhere == []
    assert not any(name.startswith("on") for _, attrs in parsed.tags for name in attrs)


def test_a_get_subscribes_nobody(client, app):
    seed_topics(app)
    client.get("/?email=reader%40example.com&topic=data")
    assert count(app, Subscriber) == 0
    assert count(app, SignupRequest) == 0
    assert count(app, Subscription) == 0


def test_the_signup_page_can_tick_an_articles_topics(client, app):
    topics = seed_topics(app)
    create_article(
        app,
        "Councils share data",
        [topics["local-digital"], topics["data"]],
        datetime(2026, 11, 30, tzinfo=UTC),
        url="https://news.example/councils-share-data",
    )
    query = urlencode(
        {"article": "https://news.example/councils-share-data", "topic": "cyber-security"}
    )
    assert sorted(ticked_topics(client.get(f"/?{query}"))) == ["data", "local-digital"]
