from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from alertsvc.articles.cleaning import clean_summary
from alertsvc.articles.services import ArticleInput, ingest_articles
from alertsvc.extensions import db
from alertsvc.html import ALLOWED_ATTRIBUTES, ALLOWED_TAGS
from alertsvc.models import Article, ArticleSource
from tests.articles.helpers import article_writes, articles, rss, rss_items, statements
from tests.factories import count, seed_topics


def ingest(app, items, source=ArticleSource.CLI, **options):
    with app.app_context():
        result = ingest_articles(items, source, **options)
        db.session.commit()
        return result


def test_cli_add_then_add_again_changes_nothing(app):
    seed_topics(app)
    runner = app.test_cli_runner()
    args = [
        "articles",
        "add",
        "--title",
        "GDS publishes roadmap",
        "--url",
        "https://news.example.org/roadmap",
        "--topic",
        "digital-government",
        "--topic",
        "data",
        "--summary",
        "<p>Three <b>missions</b><script>x()</script></p>",
        "--published",
        "2026-11-24T10:00:00+01:00",
    ]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("created")
    [article] = articles(app)
    assert article["title"] == "GDS publishes roadmap"
    assert article["summary"] == "<p>Three <b>missions</b></p>"
    assert article["published_at"] == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    assert article["topics"] == ["data", "digital-government"]
    assert article["source"] == "cli" and article["alerts_processed_at"] is None

    with statements(app) as seen:
        result = runner.invoke(args=args)
    assert result.output.strip().endswith("unchanged")
    assert article_writes(seen) == []
    assert articles(app) == [article]


def test_cli_add_refuses_bad_input(app):
    seed_topics(app)
    runner = app.test_cli_runner()
    base = ["articles", "add", "--title", "T", "--topic", "data"]
    result = runner.invoke(args=[*base, "--url", "javascript:alert(1)"])
    assert result.exit_code == 1 and "url: Not a valid URL." in result.output
    result = runner.invoke(args=[*base, "--url", "https://x.example.org/", "--published", "soon"])
    assert result.exit_code == 1 and "published: Not a valid datetime." in result.output
    result = runner.invoke(
        args=[
            "articles",
            "add",
            "--title",
            "T",
            "--url",
            "https://x.example.org/",
            "--topic",
            "nope",
        ]
    )
    assert result.exit_code == 1 and "no such topic: nope" in result.output
    assert count(app, Article) == 0


def test_a_link_with_an_impossible_port_is_refused_or_skipped(app):
    """``:99999`` passed for a web link, then failed when the link was normalised (a
    traceback from the CLI, a 500 from the API, a failed feed poll)."""
    seed_topics(app)
    result = app.test_cli_runner().invoke(
        args=[
            "articles",
            "add",
            "--title",
            "T",
            "--topic",
            "data",
            "--url",
            "http://x.example:99999/",
        ]
    )
    assert result.exit_code == 1 and "url: Not a valid URL." in result.output
    outcome = ingest(
        app, [ArticleInput(title="T", url="https://x.example:port/a")], source=ArticleSource.FEED
    )
    assert [o.status.value for o in outcome.outcomes] == ["skipped"]
    assert count(app, Article) == 0


def test_import_json_with_progress_and_rerun(app, tmp_path):
    seed_topics(app)
    path = tmp_path / "articles.json"
    path.write_text(
        json.dumps(
            [
                {
                    "title": f"Article {n}",
                    "url": f"https://news.example.org/a/{n}",
                    "topics": ["data"],
                    "categories": ["Ignored without mappings"],
                }
                for n in range(1203)
            ]
        )
    )
    runner = app.test_cli_runner()
    result = runner.invoke(args=["articles", "import", str(path), "--topic", "cyber-security"])
    assert result.exit_code == 0, result.output
    assert "Importing 1203 articles" in result.output
    assert "Imported articles.json: 1203 new, 0 updated, 0 unchanged" in result.output
    stored = articles(app)
    assert len(stored) == 1203 and stored[0]["topics"] == ["cyber-security", "data"]
    result = runner.invoke(args=["articles", "import", str(path)])
    assert "0 new, 0 updated, 1203 unchanged" in result.output


def test_import_refuses_a_file_with_invalid_articles(app, tmp_path):
    seed_topics(app)
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps(
            [
                {"title": "Fine", "url": "https://news.example.org/fine"},
                {"title": "", "url": "ftp://news.example.org/x", "colour": "red"},
            ]
        )
    )
    result = app.test_cli_runner().invoke(args=["articles", "import", str(path)])
    assert result.exit_code == 1
    assert "nothing imported" in result.output
    assert "item 1.url: Not a valid URL." in result.output
    assert "item 1.colour: Unknown field." in result.output
    assert count(app, Article) == 0


def test_import_a_feed_file_as_backfill(app, tmp_path):
    seed_topics(app)
    path = tmp_path / "archive.xml"
    path.write_text(rss(rss_items(3)))
    result = app.test_cli_runner().invoke(
        args=["articles", "import", str(path), "--topic", "data", "--backfill"]
    )
    assert result.exit_code == 0, result.output
    assert "3 new" in result.output
    stored = articles(app)
    assert [a["topics"] for a in stored] == [["data"]] * 3
    assert all(a["alerts_processed_at"] is not None for a in stored), "backfill does not alert"


def test_changed_title_updates_without_alerting_by_default(app):
    seed_topics(app)
    item = ArticleInput(title="Draft title", url="https://news.example.org/x", summary="One")
    [created_id] = ingest(app, [item]).created_ids

    changed = ArticleInput(title="Final title", url="https://news.example.org/x", summary="One")
    result = ingest(app, [changed])
    assert (result.updated_ids, result.alert_ids) == ([created_id], [])
    [article] = articles(app)
    assert article["title"] == "Final title" and article["changed_at"] is not None
    assert article["revision"] == 0 and article["major_update_at"] is None


def test_major_update_alerts_again_once(app):
    seed_topics(app)
    url = "https://news.example.org/y"
    [article_id] = ingest(app, [ArticleInput(title="T", url=url, summary="Old")]).alert_ids
    with app.app_context():
        db.session.get(Article, article_id).alerts_processed_at = datetime.now(UTC)
        db.session.commit()

    major = ArticleInput(title="T", url=url, summary="New facts", major_update=True)
    assert ingest(app, [major]).alert_ids == [article_id]
    [article] = articles(app)
    assert article["revision"] == 1 and article["alerts_processed_at"] is None
    assert article["major_update_at"] is not None

    # The same major update sent again (a retry) is unchanged: nobody is alerted twice.
    again = ingest(app, [major])
    assert (again.unchanged, again.alert_ids) == (1, [])
    assert articles(app)[0]["revision"] == 1


def test_alert_on_update_setting(make_app):
    app = make_app(ALERT_ON_UPDATE=True)
    url = "https://news.example.org/z"
    [article_id] = ingest(app, [ArticleInput(title="T", url=url)]).created_ids
    assert ingest(app, [ArticleInput(title="T2", url=url)]).alert_ids == [article_id]


def test_update_adds_newly_matching_keyword_topics_and_keeps_old_ones(app):
    topics = seed_topics(app)
    runner = app.test_cli_runner()
    runner.invoke(args=["topics", "add-keyword", "nhs", "NHS", "NHS"])
    url = "https://news.example.org/w"
    ingest(app, [ArticleInput(title="Hospital app", url=url, topics=["data"])])
    ingest(app, [ArticleInput(title="NHS hospital app", url=url)])
    assert articles(app)[0]["topics"] == ["data", "nhs"]
    assert topics


def test_duplicates_within_a_batch_and_untitled_items(app):
    seed_topics(app)
    result = ingest(
        app,
        [
            ArticleInput(title="First", url="https://news.example.org/d", guid="g-1"),
            ArticleInput(title="Second copy", url="https://news.example.org/d2", guid="g-1"),
            ArticleInput(title="", url="https://news.example.org/e", summary="<p>Only text</p>"),
            ArticleInput(title="", url="https://news.example.org/f"),
            ArticleInput(title="No link", url="mailto:someone@example.org"),
        ],
        source=ArticleSource.FEED,
    )
    assert [o.status.value for o in result.outcomes] == [
        "created",
        "unchanged",
        "created",
        "skipped",
        "skipped",
    ]
    assert [a["title"] for a in articles(app)] == ["First", "Only text"]


def test_a_big_batch_is_set_based(app):
    topics = seed_topics(app)
    app.test_cli_runner().invoke(args=["topics", "add-keyword", "ai", "AI", "AI OR automation"])
    items = [
        ArticleInput(
            title=f"Story {n}" + (" about AI" if n % 3 == 0 else ""),
            url=f"https://news.example.org/s/{n}",
            topics=["data"],
        )
        for n in range(2500)
    ]
    with statements(app) as seen:
        result = ingest(app, items)
    assert result.created == 2500
    # A few lookups (topics, keyword queries, GUIDs a thousand at a time) and the inserts,
    # whose rows the driver batches: nowhere near one statement per article.
    assert len(seen) < 40, seen
    assert sum(1 for a in articles(app) if "ai" in a["topics"]) == 834
    with statements(app) as seen:
        again = ingest(app, items)
    assert again.unchanged == 2500 and article_writes(seen) == []
    assert topics


# -- untrusted text --------------------------------------------------------------------------

FRAGMENTS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="/relative">r</a>',
    '<a href="https://ok.example.org/" onclick="x()">ok</a>',
    '<p style="background:url(x)">styled</p>',
    "<iframe src=https://evil.example></iframe>",
    "<svg><script>alert(1)</script></svg>",
    "<b>bold</b>",
    "<!-- comment --><p>para</p>",
    "&lt;script&gt;",
    "<",
    ">",
    '"',
    "<a href='data:text/html,<script>alert(1)</script>'>d</a>",
    "<form action=/x><input></form>",
    "<style>p{}</style>",
    "<math><mi xlink:href=javascript:alert(1)>m</mi></math>",
]


class _Audit(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"tag {tag}")
        for name, value in attrs:
            allowed = ALLOWED_ATTRIBUTES.get(tag, set()) | ({"rel"} if tag == "a" else set())
            if name not in allowed:
                self.problems.append(f"attribute {name} on {tag}")
            if name == "href" and not re.match(r"^(https?:|mailto:)", value or ""):
                self.problems.append(f"href {value}")


@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=10), max_size=12))
@settings(max_examples=300, deadline=None)
def test_summaries_keep_only_the_allow_list(parts):
    cleaned = clean_summary("".join(parts), base_url="https://news.example.org/a/1")
    audit = _Audit()
    audit.feed(cleaned)
    audit.close()
    assert audit.problems == []
    assert "<script" not in cleaned.lower()


def test_titles_are_stored_as_text_and_relative_links_made_absolute(app):
    seed_topics(app)
    ingest(
        app,
        [
            ArticleInput(
                title="Why <script> tags & entities matter",
                url="https://news.example.org/a/2",
                summary='<p>See <a href="../b/3">the guide</a></p>',
            )
        ],
    )
    [article] = articles(app)
    assert article["title"] == "Why <script> tags & entities matter", "escaped when shown"
    assert article["summary"] == (
        '<p>See <a href="https://news.example.org/b/3" rel="noopener noreferrer nofollow">'
        "the guide</a></p>"
    )


def test_a_publication_time_in_the_future_is_stored_as_now(app):
    """Feeds already clamp future dates; articles added by hand or through the API do too,
    so no email says an article was published in 2099."""
    seed_topics(app)
    before = datetime.now(UTC)
    result = app.test_cli_runner().invoke(
        args=[
            *("articles", "add", "--title", "From the future"),
            *("--url", "https://news.example.org/future", "--topic", "data"),
            *("--published", "2099-12-31T23:00:00Z"),
        ]
    )
    assert result.exit_code == 0, result.output

    with app.app_context():
        [article] = db.session.scalars(db.select(Article)).all()
        published = article.published_at.replace(tzinfo=article.published_at.tzinfo or UTC)
    assert before <= published <= datetime.now(UTC)


def test_an_address_with_a_user_name_or_password_is_refused_or_stored_without_them(app, tmp_path):
    """Credentials in an article's address would be published on topic pages, in the Atom
    feed and in every alert email: ``articles add`` and a JSON import refuse them; an
    RSS/Atom file (like a polled feed) keeps the article and drops the credentials."""
    seed_topics(app)
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            *("articles", "add", "--title", "T", "--topic", "data"),
            *("--url", "https://user:pass@www.example.org/x"),
        ]
    )
    assert result.exit_code == 1
    assert "url: Must not contain a user name or password" in result.output

    path = tmp_path / "articles.json"
    path.write_text(json.dumps([{"title": "T", "url": "https://user@www.example.org/x"}]))
    result = runner.invoke(args=["articles", "import", str(path)])
    assert result.exit_code == 1
    assert "item 0.url: Must not contain a user name or password" in result.output
    assert count(app, Article) == 0

    path = tmp_path / "archive.xml"
    path.write_text(
        rss([{"title": "Open data week", "link": "https://user:pass@www.example.org/x"}])
    )
    result = runner.invoke(args=["articles", "import", str(path), "--topic", "data"])
    assert result.exit_code == 0, result.output
    assert "1 new" in result.output
    [stored] = articles(app)
    assert (stored["url"], stored["guid"]) == (
        "https://www.example.org/x",
        "https://www.example.org/x",
    )


def test_a_feed_file_date_before_1970_is_taken_as_unknown(app, tmp_path):
    """The API and ``articles add`` refuse a date outside 1970-2100; in a feed file such a
    date is treated as no date (stored as the time of import), not stored as 1900."""
    seed_topics(app)
    path = tmp_path / "archive.xml"
    path.write_text(
        rss(
            [
                {
                    "title": "Zero date",
                    "link": "https://news.example.org/zero",
                    "pub_date": datetime(1900, 1, 1, tzinfo=UTC),
                },
                {
                    "title": "Dated",
                    "link": "https://news.example.org/dated",
                    "pub_date": datetime(2026, 11, 24, 9, 0, tzinfo=UTC),
                },
            ]
        )
    )
    before = datetime.now(UTC)
    result = app.test_cli_runner().invoke(args=["articles", "import", str(path), "--topic", "data"])
    assert result.exit_code == 0, result.output
    assert "2 new" in result.output
    zero, dated = articles(app)
    assert before <= zero["published_at"] <= datetime.now(UTC)
    assert dated["published_at"] == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def test_cli_add_names_a_topic_that_is_not_a_slug_without_its_place_in_the_list(app):
    seed_topics(app)
    result = app.test_cli_runner().invoke(
        args=[
            *("articles", "add", "--title", "T", "--url", "https://x.example.org/"),
            *("--topic", "data", "--topic", "dätä"),
        ]
    )
    assert result.exit_code == 1
    assert result.output == "Error: no such topic: dätä\n"
    assert count(app, Article) == 0
