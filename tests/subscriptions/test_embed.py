"""The Register For Alerts box (/embed/register): its form, its topics, who may frame it."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from sqlalchemy import update

from alertsvc.config import ConfigurationError, embed_origins
from alertsvc.extensions import db
from alertsvc.models import Article
from tests.factories import create_article, seed_topics
from tests.subscriptions.helpers import page_text
from tests.subscriptions.test_prefill import HOSTILE, inputs, retire, ticked_topics

PUBLISHER = "https://www.publisher.example"
ARTICLE = "https://www.publisher.example/news/councils-share-data"


def hidden_topics(response) -> list[str]:
    return [
        str(i["value"])
        for i in inputs(response).inputs
        if i.get("name") == "topic" and i.get("type") == "hidden"
    ]


def the_form(response) -> dict[str, str | None]:
    [form] = [attrs for tag, attrs in inputs(response).tags if tag == "form"]
    return form


@pytest.fixture
def article(app) -> dict[str, int]:
    topics = seed_topics(app)
    create_article(
        app,
        "Councils share data",
        [topics["local-digital"], topics["data"]],
        datetime(2026, 11, 30, tzinfo=UTC),
        url=ARTICLE,
    )
    return topics


def test_the_box_has_an_address_field_and_a_button_that_open_signup_in_a_new_tab(client, app):
    seed_topics(app)
    response = client.get("/embed/register?topic=data")
    assert response.status_code == 200
    text = page_text(response)
    assert "Register For Alerts" in text
    assert "Keep informed. Get the latest news about the use of technology" in text
    assert "opens in a new tab" in text
    form = the_form(response)
    assert form["method"] == "get"
    assert form["action"] == app.config["BASE_URL"] + "/"
    assert form["target"] == "_blank" and form["rel"] == "noopener"
    assert [i["name"] for i in inputs(response).inputs if i.get("type") == "email"] == ["email"]
    assert hidden_topics(response) == ["data"]
    assert "<script" not in response.get_data(as_text=True)
    assert "style=" not in response.get_data(as_text=True)


def test_the_wording_is_the_publishers(client, app_with):
    seed_topics(app_with())
    app = app_with(EMBED_HEADING="Get our alerts", EMBED_TEXT="News & more", EMBED_BUTTON="Go")
    text = page_text(app.test_client().get("/embed/register"))
    assert "Get our alerts" in text and "News &amp; more" in text and "Go" in text
    assert "Register For Alerts" not in text


@pytest.mark.parametrize("setting", ["EMBED_HEADING", "EMBED_BUTTON"])
@pytest.mark.parametrize("value", ["", "   "])
def test_a_blank_heading_or_button_stops_start_up_with_one_line(make_app, setting, value):
    """A button with no words has no name a screen reader can say, nor a heading."""
    with pytest.raises(ConfigurationError, match=f"^ALERTSVC_{setting} must not be blank"):
        make_app(**{setting: value})


def test_the_wording_is_read_from_the_environment_as_it_is_written(make_app, monkeypatch, client):
    """``from_prefixed_env`` reads JSON: ``true`` became the button "True", ``["A"]`` a list."""
    monkeypatch.setenv("ALERTSVC_EMBED_BUTTON", "true")
    monkeypatch.setenv("ALERTSVC_EMBED_HEADING", '["Alerts"]')
    monkeypatch.setenv("ALERTSVC_EMBED_TEXT", "2026")
    app = make_app()
    assert (app.config["EMBED_BUTTON"], app.config["EMBED_HEADING"]) == ("true", '["Alerts"]')
    assert app.config["EMBED_TEXT"] == "2026"


def test_the_box_passes_on_known_live_topics_only(client, app):
    seed_topics(app)
    retire(app, "health-and-care")
    query = urlencode(
        [("topic", "data"), ("topic", "data"), ("topic", "health-and-care")]
        + [("topic", value) for value in HOSTILE]
    )
    response = client.get(f"/embed/register?{query}")
    assert response.status_code == 200
    assert hidden_topics(response) == ["data"]
    body = response.get_data(as_text=True)
    assert not any(value in body for value in HOSTILE)


def test_the_box_ticks_the_articles_topics(client, article):
    response = client.get("/embed/register?" + urlencode({"article": ARTICLE, "topic": "data"}))
    assert sorted(hidden_topics(response)) == ["data", "local-digital"]
    assert "Alerts about Data and Local digital." in page_text(response)


@pytest.mark.parametrize(
    "address",
    [
        ARTICLE + "?utm_source=newsletter&utm_medium=email",
        ARTICLE + "#comments",
        "HTTPS://WWW.Publisher.example/news/councils-share-data",
        "https://www.publisher.example:443/news/councils-share-data",
    ],
    ids=["tracking", "fragment", "case", "default-port"],
)
def test_the_article_is_found_by_its_address_as_ingestion_normalises_it(client, article, address):
    """Feeds without a GUID store the normalised link as the GUID (``create_article``
    stores ``ARTICLE`` as both); the box finds it so."""
    response = client.get("/embed/register?" + urlencode({"article": address}))
    assert sorted(hidden_topics(response)) == ["data", "local-digital"]


def test_an_article_with_its_feeds_own_guid_is_found_by_its_link(client, app, article):
    with app.app_context():
        db.session.execute(update(Article).values(guid="tag:publisher.example,2026:1234"))
        db.session.commit()
    response = client.get("/embed/register?" + urlencode({"article": ARTICLE}))
    assert sorted(hidden_topics(response)) == ["data", "local-digital"]


def test_an_unknown_article_falls_back_to_the_topic_parameters_or_none(client, article):
    unknown = "https://www.publisher.example/news/another-story"
    with_topics = client.get("/embed/register?" + urlencode({"article": unknown, "topic": "data"}))
    assert hidden_topics(with_topics) == ["data"]
    assert hidden_topics(client.get("/embed/register?" + urlencode({"article": unknown}))) == []
    for odd in ("not a url", "javascript:alert(1)", "https://x.example/" + "a" * 5000):
        response = client.get("/embed/register?" + urlencode({"article": odd}))
        assert response.status_code == 200
        assert hidden_topics(response) == []


@pytest.mark.parametrize("path", ["/embed/register", "/"])
@pytest.mark.parametrize(
    "odd",
    [
        "http://www.publisher.example:99999/news/councils-share-data",
        "https://www.publisher.example:-1/news",
        "https://www.publisher.example:port/news",
    ],
    ids=["port-out-of-range", "negative-port", "port-not-a-number"],
)
def test_an_article_address_with_an_impossible_port_falls_back_to_the_topics(
    client, article, path, odd
):
    """Such an address was taken for a web link, then failed to parse further on (500)."""
    response = client.get(f"{path}?" + urlencode({"article": odd, "topic": "data"}))
    assert response.status_code == 200
    if path == "/":
        assert ticked_topics(response) == ["data"]
    else:
        assert hidden_topics(response) == ["data"]


def test_retired_topics_of_the_article_are_never_ticked(client, app, article):
    retire(app, "local-digital")
    response = client.get("/embed/register?" + urlencode({"article": ARTICLE}))
    assert hidden_topics(response) == ["data"]


def test_the_plain_form_lands_on_the_prefilled_signup_page(client, app):
    """The plain-HTML snippet in the README: a GET form with ``email`` and hidden ``topic``."""
    seed_topics(app)
    response = client.get("/", query_string=[("email", "reader@example.com"), ("topic", "data")])
    assert response.status_code == 200
    assert ticked_topics(response) == ["data"]
    assert [i["value"] for i in inputs(response).inputs if i.get("name") == "email"] == [
        "reader@example.com"
    ]


def test_with_no_origins_the_box_may_be_framed_by_nobody(client, app):
    response = client.get("/embed/register")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


def test_the_configured_origins_may_frame_the_box(app_with):
    app = app_with(EMBED_ORIGINS=f"{PUBLISHER}, http://localhost:8000")
    response = app.test_client().get("/embed/register")
    policy = response.headers["Content-Security-Policy"]
    assert f"frame-ancestors {PUBLISHER} http://localhost:8000;" in policy
    assert "script-src" not in policy and "default-src 'self'" in policy
    assert "X-Frame-Options" not in response.headers
    other = app.test_client().get("/")
    assert "frame-ancestors 'none'" in other.headers["Content-Security-Policy"]
    assert other.headers["X-Frame-Options"] == "DENY"


def test_embed_origins_are_read_as_a_list_or_comma_separated():
    assert embed_origins("", production=True) == []
    assert embed_origins(
        "https://WWW.Example.org/, https://news.example:8443,https://www.example.org",
        production=True,
    ) == ["https://www.example.org", "https://news.example:8443"]
    assert embed_origins(["http://localhost:8000"], production=False) == ["http://localhost:8000"]


@pytest.mark.parametrize(
    "value",
    [
        "http://www.example.org",
        "www.example.org",
        "https://www.example.org/news",
        "https://www.example.org?x=1",
        "https://*.example.org",
        "https://www.example.org; script-src *",
        "https://www.example.org 'unsafe-inline'",
        "'self'",
        "https://user@www.example.org",
        "https://www.example.org:0",
        "https://www.example.org:99999",
        "javascript:alert(1)",
    ],
)
def test_a_wrong_embed_origin_stops_start_up_with_one_line(app_with, value):
    with pytest.raises(ConfigurationError, match="ALERTSVC_EMBED_ORIGINS") as caught:
        embed_origins(value, production=True)
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="ALERTSVC_EMBED_ORIGINS"):
        app_with(ENV="production", EMBED_ORIGINS=[value])


def test_http_origins_are_allowed_outside_production_only(app_with):
    assert app_with(EMBED_ORIGINS="http://localhost:8000").config["EMBED_ORIGINS"] == [
        "http://localhost:8000"
    ]
    with pytest.raises(ConfigurationError, match="https"):
        app_with(ENV="production", EMBED_ORIGINS="http://localhost:8000")
