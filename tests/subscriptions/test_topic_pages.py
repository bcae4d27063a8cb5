"""Public topic pages (/topics, /topics/<slug>) and their Atom feeds."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from urllib.parse import urlsplit

import feedparser
import pytest
from sqlalchemy import delete, update

from alertsvc.database import transaction
from alertsvc.extensions import db
from alertsvc.models import Article, Topic, article_topics
from alertsvc.topics.services import add_topic, update_topic
from tests.factories import create_article, create_topic

DAY = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def text_of(html: str) -> str:
    """The page's words as a person reads them: tags dropped, spaces collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def keyword_topic(app, slug: str, name: str, query: str) -> int:
    with app.app_context(), transaction():
        topic = add_topic(slug, name, "", query)
        db.session.flush()
        return topic.id


# -- /topics ---------------------------------------------------------------------------------


def test_the_topic_list_shows_each_topic_readers_can_follow(app, client):
    create_topic(app, "data", "Data", "Open data and statistics.")
    create_topic(app, "cyber-security", "Cyber security", "Threats and defences.")
    retired = create_topic(app, "old-news", "Old news", "Gone.")
    keyword_topic(app, "nhs", "NHS", "NHS cyber OR ransomware")
    with app.app_context(), transaction():
        db.session.execute(update(Topic).where(Topic.id == retired).values(retired_at=DAY))

    response = client.get("/topics")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    text = text_of(page)
    assert "Cyber security Threats and defences." in text
    assert "Data Open data and statistics." in text
    assert "Emails about articles that mention “NHS” and either “cyber” or “ransomware”." in text
    assert "Old news" not in text
    assert 'href="/topics/data"' in page
    assert 'href="/topics/nhs"' in page
    assert text.index("Cyber security") < text.index("Data Open")  # by name


def test_the_signup_page_links_to_the_topic_list(app, client):
    create_topic(app, "data", "Data")
    assert 'href="/topics"' in client.get("/").get_data(as_text=True)


# -- /topics/<slug> --------------------------------------------------------------------------


def test_a_topic_page_shows_the_topic_and_its_ten_newest_articles(app, client):
    data = create_topic(app, "data", "Data", "Open data and statistics.")
    other = create_topic(app, "cyber-security", "Cyber security")
    for day in range(12):
        create_article(app, f"Data story {day}", [data], DAY + timedelta(days=day))
    create_article(app, "Someone else's story", [other], DAY + timedelta(days=20))

    response = client.get("/topics/data")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    text = text_of(page)
    assert "<h1>Data</h1>" in page
    assert "Open data and statistics." in text
    titles = re.findall(r"Data story \d+", text)
    assert titles == [f"Data story {day}" for day in range(11, 1, -1)]
    assert "Data story 11 13 November 2026" in text
    assert '<a href="https://news.example/data-story-11">Data story 11</a>' in page
    assert "Someone else" not in text


def test_a_keyword_topic_page_says_what_it_collects(app, client):
    keyword_topic(app, "cyber", "Cyber", "cyber OR ransomware")

    text = text_of(client.get("/topics/cyber").get_data(as_text=True))

    assert "This topic collects articles that mention “cyber” or “ransomware”" in text


def test_a_topic_page_with_no_articles_says_so(app, client):
    create_topic(app, "data", "Data")

    text = text_of(client.get("/topics/data").get_data(as_text=True))

    assert "No articles yet." in text


def test_a_topic_page_escapes_hostile_titles_and_links_only_to_the_web(app, client):
    data = create_topic(app, "data", "Data")
    create_article(
        app,
        '<script>alert("title")</script>',
        [data],
        DAY,
        url="javascript:alert(1)",
    )

    page = client.get("/topics/data").get_data(as_text=True)

    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt;" in page
    assert "javascript:" not in page


def test_a_topic_page_offers_a_signup_form_that_ticks_the_topic_on_the_signup_page(app, client):
    create_topic(app, "data", "Data")

    page = client.get("/topics/data").get_data(as_text=True)

    form = re.search(r"<form [^>]*>.*?</form>", page, re.S).group(0)
    assert 'method="get"' in form and 'action="/"' in form
    assert '<input type="hidden" name="topic" value="data">' in form
    assert 'name="email" type="email"' in form
    assert "csrf_token" not in page


def test_a_topic_page_links_its_atom_feed(app, client):
    create_topic(app, "data", "Data")

    page = client.get("/topics/data").get_data(as_text=True)

    assert re.search(
        r'<link rel="alternate" type="application/atom\+xml" title="[^"]+"'
        r' href="/topics/data.atom">',
        page,
    )
    assert '<a href="/topics/data.atom">' in page


def test_the_list_with_a_trailing_slash_redirects_to_the_list(client):
    response = client.get("/topics/")
    assert response.status_code == 308
    assert response.headers["Location"] == "/topics"
    assert client.get("/topics/", follow_redirects=True).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/topics/nope",
        "/topics/old",
        "/topics/nope.atom",
        "/topics/old.atom",
        "/topics/data.atom.atom",
        "/topics/Data",
    ],
)
def test_unknown_or_retired_topics_are_not_found(app, client, path):
    create_topic(app, "data", "Data")
    retired = create_topic(app, "old", "Old")
    with app.app_context(), transaction():
        db.session.execute(update(Topic).where(Topic.id == retired).values(retired_at=DAY))

    response = client.get(path)

    assert response.status_code == 404
    assert "Page not found" in response.get_data(as_text=True)


# -- the Atom feed ---------------------------------------------------------------------------


def test_the_atom_feed_is_valid_and_lists_the_topics_recent_articles(app, client):
    data = create_topic(app, "data", "Data", "Open data & statistics.")
    other = create_topic(app, "cyber-security", "Cyber security")
    for day in range(22):
        create_article(
            app,
            f"Data story {day}",
            [data],
            DAY + timedelta(days=day),
            summary="<p>Numbers &amp; <strong>charts</strong></p>",
        )
    create_article(app, "Someone else's story", [other], DAY + timedelta(days=30))

    response = client.get("/topics/data.atom")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    feed = feedparser.parse(response.data)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.title == "Data \u2013 Public Technology alerts"
    assert feed.feed.subtitle == "Open data & statistics."
    assert feed.feed.id == f"{app.config['BASE_URL']}/topics/data"
    links = {link.rel: link.href for link in feed.feed.links}
    assert links["self"].endswith("/topics/data.atom")
    assert links["alternate"].endswith("/topics/data")
    assert feed.feed.updated == "2026-11-23T09:30:00Z"
    assert [entry.title for entry in feed.entries] == [
        f"Data story {day}" for day in range(21, 1, -1)
    ]
    newest = feed.entries[0]
    assert newest.link == "https://news.example/data-story-21"
    assert newest.id.startswith("https://news.example/data-story-21")
    assert newest.published == "2026-11-23T09:30:00Z"
    assert newest.summary == "<p>Numbers &amp; <strong>charts</strong></p>"


def test_the_atom_feed_escapes_hostile_titles_and_summaries(app, client):
    data = create_topic(app, "data", "Data <b>&</b>")
    create_article(
        app,
        "</title><script>alert(1)</script> & ]]> \x0b",
        [data],
        DAY,
        summary="<p>a</p></summary><entry>",
    )

    response = client.get("/topics/data.atom")

    body = response.get_data(as_text=True)
    assert "<script>" not in body
    assert "</summary><entry>" not in body
    feed = feedparser.parse(response.data)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.feed.title == "Data <b>&</b> \u2013 Public Technology alerts"
    assert [entry.title for entry in feed.entries] == ["</title><script>alert(1)</script> & ]]>"]


def test_an_article_without_a_uri_guid_gets_a_tag_id(app, client):
    data = create_topic(app, "data", "Data")
    article = create_article(app, "Numbered", [data], DAY)
    with app.app_context(), transaction():
        db.session.execute(update(Article).where(Article.id == article).values(guid="12345"))

    feed = feedparser.parse(client.get("/topics/data.atom").data)

    assert not feed.bozo
    host = urlsplit(app.config["BASE_URL"]).hostname
    assert feed.entries[0].id == f"tag:{host},2026-11-02:article:{article}"


@pytest.mark.parametrize(
    "guid", ['urn:x:<b>"1"</b>', "post:{1234}", "x:a|b", "x:a\\b", "x:a^b", "x:a`b"]
)
def test_a_guid_that_is_no_iri_is_not_used_as_an_atom_id(app, client, guid):
    """RFC 4287 §4.2.6: an atom:id is an IRI (RFC 3987), which cannot hold < > " { } | \\ ^ `."""
    data = create_topic(app, "data", "Data")
    article = create_article(app, "Odd guid", [data], DAY)
    with app.app_context(), transaction():
        db.session.execute(update(Article).where(Article.id == article).values(guid=guid))

    feed = feedparser.parse(client.get("/topics/data.atom").data)

    host = urlsplit(app.config["BASE_URL"]).hostname
    assert feed.entries[0].id == f"tag:{host},2026-11-02:article:{article}"


def test_an_empty_topic_has_a_valid_feed(app, client):
    create_topic(app, "data", "Data")

    feed = feedparser.parse(client.get("/topics/data.atom").data)

    assert not feed.bozo
    assert feed.entries == []


# -- caching ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/topics", "/topics/data", "/topics/data.atom"])
def test_topic_pages_are_public_and_answer_a_conditional_get_with_304(app, client, path):
    data = create_topic(app, "data", "Data")
    create_article(app, "Story", [data], DAY)

    first = client.get(path)
    again = client.get(path, headers={"If-None-Match": first.headers["ETag"]})

    assert first.status_code == 200
    assert first.headers["Cache-Control"] == "public, max-age=300"
    assert first.headers["ETag"]
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.headers["Cache-Control"] == "public, max-age=300"
    stale = client.get(path, headers={"If-None-Match": '"something-else"'})
    assert stale.status_code == 200


@pytest.mark.parametrize("path", ["/topics", "/topics/data"])
def test_a_public_page_carries_nothing_from_the_readers_session(app, client, path):
    create_topic(app, "data", "Data")
    with client.session_transaction() as session:
        session["_flashes"] = [("message", "Your changes have been saved.")]

    response = client.get(path)

    assert "Your changes have been saved." not in response.get_data(as_text=True)
    assert "Set-Cookie" not in response.headers


def test_other_pages_stay_uncached(client):
    assert client.get("/").headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/topics/data", "/topics/data.atom"])
def test_the_validator_changes_when_a_new_article_arrives(app, client, path):
    data = create_topic(app, "data", "Data")
    create_article(app, "Story", [data], DAY)
    before = client.get(path).headers["ETag"]

    create_article(app, "Newer story", [data], DAY + timedelta(days=1))
    response = client.get(path, headers={"If-None-Match": before})

    assert response.status_code == 200
    assert response.headers["ETag"] != before
    assert "Newer story" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/topics/data", "/topics/data.atom"])
def test_the_validator_changes_when_an_article_is_updated(app, client, path):
    data = create_topic(app, "data", "Data")
    article = create_article(app, "Story", [data], DAY)
    before = client.get(path).headers["ETag"]

    with app.app_context(), transaction():
        db.session.execute(
            update(Article)
            .where(Article.id == article)
            .values(title="Story, corrected", changed_at=DAY + timedelta(hours=1))
        )
    response = client.get(path, headers={"If-None-Match": before})

    assert response.status_code == 200
    assert "Story, corrected" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/topics", "/topics/data", "/topics/data.atom"])
def test_the_validator_changes_when_the_topic_is_edited(app, client, path):
    create_topic(app, "data", "Data")
    before = client.get(path).headers["ETag"]

    with app.app_context(), transaction():
        topic = db.session.scalar(db.select(Topic).where(Topic.slug == "data"))
        update_topic(topic, "Open data", "Now with a description")
    response = client.get(path, headers={"If-None-Match": before})

    assert response.status_code == 200
    assert "Open data" in response.get_data(as_text=True)


def test_a_retired_topic_leaves_the_list_at_once(app, client):
    topic = create_topic(app, "data", "Data")
    before = client.get("/topics").headers["ETag"]

    with app.app_context(), transaction():
        db.session.execute(update(Topic).where(Topic.id == topic).values(retired_at=DAY))
    response = client.get("/topics", headers={"If-None-Match": before})

    assert response.status_code == 200
    assert "Data" not in text_of(response.get_data(as_text=True)).split("Topics", 2)[-1]


@pytest.mark.parametrize("path", ["/topics/data", "/topics/data.atom"])
def test_the_validator_changes_when_an_older_article_leaves_the_topic(app, client, path):
    data = create_topic(app, "data", "Data")
    older = create_article(app, "Older story", [data], DAY)
    create_article(app, "Story", [data], DAY + timedelta(days=1))
    before = client.get(path).headers["ETag"]

    with app.app_context(), transaction():
        db.session.execute(delete(article_topics).where(article_topics.c.article_id == older))
    response = client.get(path, headers={"If-None-Match": before})

    assert response.status_code == 200
    assert "Older story" not in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/topics", "/topics/data", "/topics/data.atom"])
def test_the_validator_changes_with_the_site_name_the_page_shows(app, app_with, client, path):
    create_topic(app, "data", "Data")
    before = client.get(path).headers["ETag"]

    renamed = app_with(SITE_NAME="Council tech alerts").test_client()
    response = renamed.get(path, headers={"If-None-Match": before})

    assert response.status_code == 200
    assert "Council tech alerts" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/topics/data.atom", "/embed/register", "/topics/data"])
def test_no_public_response_saves_the_session_whatever_touched_it(app, path):
    """An operator's session seen from a new browser (Flask-Login marks it not fresh) and a
    flash waiting for its page: neither may come back in a Set-Cookie on a response shared
    caches keep (the feed and the box sent one)."""
    from tests.admin.helpers import sign_in
    from tests.factories import create_operator

    create_topic(app, "data", "Data")
    create_operator(app)
    client = app.test_client()
    assert sign_in(client).status_code == 302
    with client.session_transaction() as session:
        session["_flashes"] = [("message", "You have signed out.")]

    response = client.get(path, headers={"User-Agent": "another browser"})

    assert response.status_code == 200
    assert response.cache_control.public
    assert "Set-Cookie" not in response.headers


def test_only_if_none_match_answers_304(app, client):
    create_topic(app, "data", "Data")
    assert client.get("/topics/data", headers={"If-Match": '"nope"'}).status_code == 200
    assert client.get("/topics/data", headers={"If-None-Match": "*"}).status_code == 304


def test_the_template_version_does_not_depend_on_the_order_templates_are_listed(app):
    """Flask's loader lists a set: its order changed with each process's hash seed, and so did
    every ETag, so no validator survived a restart or matched another host's."""
    from jinja2 import DictLoader

    from alertsvc.subscriptions.topic_pages import _template_digest

    class Listed(DictLoader):
        def __init__(self, mapping, order):
            super().__init__(mapping)
            self.order = order

        def list_templates(self):
            return list(self.order)

    mapping = {"web/a.html": "A", "web/b.html": "B"}
    with app.app_context():
        forwards = _template_digest(Listed(mapping, ["web/a.html", "web/b.html"]))
        backwards = _template_digest(Listed(mapping, ["web/b.html", "web/a.html"]))
    assert forwards == backwards


def test_an_unreadable_file_among_the_overrides_does_not_break_topic_pages(app_with, tmp_path):
    backup = tmp_path / "web" / "legal" / "privacy_body.html.bak"
    backup.parent.mkdir(parents=True)
    backup.write_bytes(b"caf\xe9")
    app = app_with(TEMPLATE_OVERRIDES_DIR=str(tmp_path))
    create_topic(app, "data", "Data")
    client = app.test_client()
    for path in ("/topics", "/topics/data", "/topics/data.atom"):
        assert client.get(path).status_code == 200, path
