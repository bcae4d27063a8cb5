from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from alertsvc.articles import feeds, fetching, jobs
from alertsvc.extensions import db
from alertsvc.models import Article, Feed, utcnow
from tests.articles.conftest import FEED_SETTINGS
from tests.articles.helpers import article_writes, articles, feed_row, rss, rss_items, statements
from tests.factories import count, create_feed, seed_topics

RSS_CONTENT_TYPE = "application/rss+xml; charset=utf-8"


def poll(app, *feed_ids: int) -> list[feeds.PollResult]:
    with app.app_context():
        results = jobs.poll_feeds(list(feed_ids), due_only=False)
        db.session.remove()
        return results


def test_rss_with_categories_lands_in_feed_and_mapped_topics(feeds_app, httpserver, cli):
    seed_topics(feeds_app)
    published = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    httpserver.expect_request("/feed.xml").respond_with_data(
        rss(
            [
                {
                    "title": "Councils adopt shared platform",
                    "link": "https://news.example.org/councils",
                    "guid": "pt-1001",
                    "description": "Forty councils move to one platform.",
                    "categories": ["Local digital"],
                    "pub_date": published,
                    "author": "Sam Reporter",
                },
                {
                    "title": "Ransomware hits supplier",
                    "link": "https://news.example.org/ransomware",
                    "guid": "pt-1002",
                    "description": "A supplier to several trusts was attacked.",
                    "categories": ["  CYBER   security ", "Health"],
                    "pub_date": published + timedelta(hours=1),
                },
            ]
        ),
        content_type=RSS_CONTENT_TYPE,
    )
    url = httpserver.url_for("/feed.xml")
    result = cli("feeds", "add", url, "--topic", "digital-government")
    assert result.exit_code == 0, result.output
    feed_id = int(result.output.split()[2].rstrip(":"))
    assert cli("feeds", "map-category", "Cyber security", "cyber-security").exit_code == 0
    assert (
        cli("feeds", "map-category", "Health", "health-and-care", "--feed", str(feed_id)).exit_code
        == 0
    )
    assert "'cyber security' from every feed -> cyber-security" in cli("feeds", "categories").output

    result = cli("feeds", "poll", "--all")
    assert result.exit_code == 0, result.output
    assert "2 new, 0 updated, 0 unchanged" in result.output

    first, second = articles(feeds_app)
    assert first["guid"] == "pt-1001" and first["url"] == "https://news.example.org/councils"
    assert first["title"] == "Councils adopt shared platform"
    assert first["author"] == "Sam Reporter"
    assert first["published_at"] == published
    assert first["source"] == "feed" and first["feed_id"] == feed_id
    assert first["topics"] == ["digital-government"]
    assert second["topics"] == ["cyber-security", "digital-government", "health-and-care"]
    feed = feed_row(feeds_app, feed_id)
    assert feed.title == "Public Technology"
    assert feed.newest_item_at == published + timedelta(hours=1)
    assert feed.last_success_at is not None and feed.consecutive_failures == 0


def test_atom_feed(feeds_app, httpserver):
    topics = seed_topics(feeds_app)
    httpserver.expect_request("/atom").respond_with_data(
        """<?xml version="1.0" encoding="utf-8"?>
        <feed xmlns="http://www.w3.org/2005/Atom">
          <title>GDS blog</title><id>urn:uuid:feed</id><updated>2026-11-21T10:00:00Z</updated>
          <entry>
            <title type="html">&lt;em&gt;One Login&lt;/em&gt; reaches 10 million users</title>
            <link rel="alternate" href="/2026/11/one-login"/>
            <id>tag:gds.example.org,2026:one-login</id>
            <published>2026-11-21T09:00:00+01:00</published>
            <updated>2026-11-21T10:00:00Z</updated>
            <author><name>A. Blogger</name></author>
            <category term="identity"/>
            <summary type="html">&lt;p&gt;A milestone for
              &lt;strong&gt;GOV.UK&lt;/strong&gt;.&lt;/p&gt;</summary>
          </entry>
        </feed>""",
        content_type="application/atom+xml",
    )
    feed_id = create_feed(feeds_app, httpserver.url_for("/atom"), ["digital-government"])
    [result] = poll(feeds_app, feed_id)
    assert result.status == feeds.PollStatus.FETCHED and result.ingest.created == 1
    [article] = articles(feeds_app)
    assert article["title"] == "One Login reaches 10 million users"
    assert article["guid"] == "tag:gds.example.org,2026:one-login"
    assert article["url"] == httpserver.url_for("/2026/11/one-login")
    assert article["published_at"] == datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    assert article["summary"] == "<p>A milestone for\n              <strong>GOV.UK</strong>.</p>"
    assert article["author"] == "A. Blogger"
    assert article["topics"] == ["digital-government"]
    assert topics


def test_rss_without_guids_is_unique_by_normalised_link(feeds_app, httpserver):
    seed_topics(feeds_app)
    items = [
        {
            "title": "Data strategy published",
            "link": "HTTPS://News.Example.org:443/data?utm_source=rss#top",
        },
        {"title": "Open data week", "link": "https://news.example.org/open?id=7&utm_medium=feed"},
    ]
    httpserver.expect_request("/noguid").respond_with_data(
        rss(items), content_type=RSS_CONTENT_TYPE
    )
    feed_id = create_feed(feeds_app, httpserver.url_for("/noguid"), ["data"])
    poll(feeds_app, feed_id)
    assert [a["guid"] for a in articles(feeds_app)] == [
        "https://news.example.org/data",
        "https://news.example.org/open?id=7",
    ]

    # The feed changes (a new item, tracking parameters rotate): the old items are not repeated.
    items = [
        {"title": "Cloud first, again", "link": "https://news.example.org/cloud"},
        {"title": "Data strategy published", "link": "https://news.example.org/data?utm_source=x"},
        {"title": "Open data week", "link": "https://news.example.org/open?id=7"},
    ]
    httpserver.clear()
    httpserver.expect_request("/noguid").respond_with_data(
        rss(items), content_type=RSS_CONTENT_TYPE
    )
    [result] = poll(feeds_app, feed_id)
    assert (result.ingest.created, result.ingest.unchanged) == (1, 2)
    assert count(feeds_app, Article) == 3


def test_credentials_and_dates_before_1970_in_a_feed_are_left_out(feeds_app, httpserver):
    """A link's user name and password would be published in pages and emails; a 1900 date
    is a publisher's zero date. Neither fails the poll or loses the article: the link is
    stored without the credentials, the date is unknown (the time of the poll)."""
    seed_topics(feeds_app)
    items = [
        {
            "title": "Staging link",
            "link": "https://editor:s3cret@news.example.org/staging",
            "guid": "staging",
            "pub_date": datetime(1900, 1, 1, tzinfo=UTC),
        },
        *rss_items(1),
    ]
    httpserver.expect_request("/leaky").respond_with_data(rss(items), content_type=RSS_CONTENT_TYPE)
    feed_id = create_feed(feeds_app, httpserver.url_for("/leaky"), ["data"])
    before = utcnow()
    [result] = poll(feeds_app, feed_id)
    assert result.status == feeds.PollStatus.FETCHED and result.ingest.created == 2
    staging, _ = articles(feeds_app)
    assert staging["url"] == "https://news.example.org/staging"
    assert before <= staging["published_at"] <= utcnow()


def test_wordpress_html_is_cleaned_and_titles_are_text(feeds_app, httpserver):
    seed_topics(feeds_app)
    description = (
        '<p onclick="steal()">The council&#8217;s <b>new</b> app '
        '<a href="https://council.example.org/app" target="_blank">launched</a>'
        '<script>alert(1)</script><img src="https://tracker.example/p.gif">'
        '<a href="javascript:alert(2)">more</a></p>'
        '<iframe src="https://evil.example"></iframe><p>The post '
        '<a href="https://blog.example.org/app">appeared first</a> on Blog.</p>'
    )
    content = "<h2>Full story</h2><p>" + "Lots of text. " * 50 + "</p>"
    body = rss(
        [
            {
                "title": "Fish &amp; chips <b>app</b> for councils",
                "link": "https://blog.example.org/app",
                "guid": "https://blog.example.org/?p=123",
                "description": description,
                "content": content,
            },
            {
                "title": "Only full content here",
                "link": "https://blog.example.org/full",
                "guid": "https://blog.example.org/?p=124",
                "content": "<p>Full <em>content</em> <style>p{}</style>only</p>",
            },
        ]
    )
    httpserver.expect_request("/wp").respond_with_data(body, content_type=RSS_CONTENT_TYPE)
    feed_id = create_feed(feeds_app, httpserver.url_for("/wp"), ["local-digital"])
    poll(feeds_app, feed_id)
    first, second = articles(feeds_app)

    summary = first["summary"]
    for forbidden in ("script", "alert", "onclick", "iframe", "<img", "javascript:", "target="):
        assert forbidden not in summary
    assert "The council\u2019s <b>new</b> app" in summary
    assert (
        '<a href="https://council.example.org/app" rel="noopener noreferrer nofollow">launched</a>'
        in summary
    )
    assert "Full story" not in summary, "the description is the summary, not content:encoded"
    assert first["title"] == "Fish & chips app for councils"
    assert second["summary"] == "<p>Full <em>content</em> only</p>"


def test_conditional_get_304_costs_no_article_writes(feeds_app, httpserver):
    seed_topics(feeds_app)
    body = rss(rss_items(3))
    modified = "Wed, 25 Nov 2026 08:00:00 GMT"
    httpserver.expect_ordered_request("/feed", method="GET").respond_with_data(
        body, content_type=RSS_CONTENT_TYPE, headers={"ETag": '"v1"', "Last-Modified": modified}
    )
    httpserver.expect_ordered_request(
        "/feed", headers={"If-None-Match": '"v1"', "If-Modified-Since": modified}
    ).respond_with_data("", status=304)
    feed_id = create_feed(feeds_app, httpserver.url_for("/feed"), ["data"])

    [first] = poll(feeds_app, feed_id)
    assert first.ingest.created == 3
    feed = feed_row(feeds_app, feed_id)
    assert (feed.etag, feed.last_modified) == ('"v1"', modified)

    with statements(feeds_app) as seen:
        [second] = poll(feeds_app, feed_id)
    assert second.status == feeds.PollStatus.NOT_MODIFIED
    assert article_writes(seen) == []
    httpserver.check_assertions()
    assert feed_row(feeds_app, feed_id).last_success_at > feed.last_success_at


def test_same_body_again_without_validators_costs_no_article_writes(feeds_app, httpserver):
    seed_topics(feeds_app)
    httpserver.expect_request("/plain").respond_with_data(
        rss(rss_items(4)), content_type=RSS_CONTENT_TYPE
    )
    feed_id = create_feed(feeds_app, httpserver.url_for("/plain"), ["data"])
    poll(feeds_app, feed_id)
    with statements(feeds_app) as seen:
        [again] = poll(feeds_app, feed_id)
    assert again.status == feeds.PollStatus.UNCHANGED
    assert article_writes(seen) == []
    assert count(feeds_app, Article) == 4


def test_first_poll_is_a_backlog_then_new_items_alert(feeds_app, httpserver):
    seed_topics(feeds_app)
    httpserver.expect_ordered_request("/f").respond_with_data(
        rss(rss_items(2)), content_type=RSS_CONTENT_TYPE
    )
    httpserver.expect_ordered_request("/f").respond_with_data(
        rss(rss_items(3)), content_type=RSS_CONTENT_TYPE
    )
    feed_id = create_feed(feeds_app, httpserver.url_for("/f"), ["data"])
    [first] = poll(feeds_app, feed_id)
    assert first.ingest.created == 2 and first.ingest.alert_ids == []
    [second] = poll(feeds_app, feed_id)
    assert second.ingest.created == 1 and second.ingest.alert_ids == second.ingest.created_ids
    stored = articles(feeds_app)
    assert [a["alerts_processed_at"] is None for a in stored] == [False, False, True]


def test_a_failing_feed_is_recorded_and_the_others_go_on(feeds_app, httpserver, cli):
    seed_topics(feeds_app)
    httpserver.expect_request("/broken").respond_with_data(
        "<html><body><h1>We have moved!</h1>", content_type="text/html"
    )
    httpserver.expect_request("/gone").respond_with_data("nope", status=503)
    httpserver.expect_request("/good").respond_with_data(
        rss(rss_items(2)), content_type=RSS_CONTENT_TYPE
    )
    broken = create_feed(feeds_app, httpserver.url_for("/broken"), ["data"])
    gone = create_feed(feeds_app, httpserver.url_for("/gone"), ["data"])
    good = create_feed(feeds_app, httpserver.url_for("/good"), ["data"])

    result = cli("feeds", "poll", "--all")
    assert result.exit_code == 1
    assert f"feed {broken} {httpserver.url_for('/broken')}: error: not an RSS or Atom feed" in (
        result.output
    )
    assert f"feed {gone} {httpserver.url_for('/gone')}: error: HTTP 503" in result.output
    assert f"feed {good} {httpserver.url_for('/good')}: 2 new" in result.output
    assert count(feeds_app, Article) == 2
    broken_row = feed_row(feeds_app, broken)
    assert broken_row.consecutive_failures == 1 and broken_row.last_success_at is None
    assert "not an RSS or Atom feed" in broken_row.last_error
    assert broken_row.poll_lease_until is None


def test_redirects_are_followed_up_to_the_cap(feeds_app, httpserver):
    seed_topics(feeds_app)
    httpserver.expect_request("/old").respond_with_data(
        "", status=301, headers={"Location": "/new"}
    )
    httpserver.expect_request("/new").respond_with_data(
        rss(rss_items(1)), content_type=RSS_CONTENT_TYPE
    )
    httpserver.expect_request("/a").respond_with_data("", status=302, headers={"Location": "/b"})
    httpserver.expect_request("/b").respond_with_data("", status=302, headers={"Location": "/a"})
    moved = create_feed(feeds_app, httpserver.url_for("/old"), ["data"])
    loop = create_feed(feeds_app, httpserver.url_for("/a"), ["data"])
    moved_result, loop_result = poll(feeds_app, moved, loop)
    assert moved_result.ingest.created == 1
    assert loop_result.status == feeds.PollStatus.FAILED
    assert loop_result.error.startswith("more than 3 redirects")
    requests_to_loop = [r for r, _ in httpserver.log if r.path in ("/a", "/b")]
    assert len(requests_to_loop) == 4


def test_slow_feed_times_out(app_with, httpserver):
    feeds_app = app_with(**{**FEED_SETTINGS, "FEEDS_TIMEOUT_SECONDS": 1.0})
    seed_topics(feeds_app)
    release = threading.Event()

    def slow(request):
        release.wait(10)
        return Response(rss(rss_items(1)), content_type=RSS_CONTENT_TYPE)

    httpserver.expect_request("/slow").respond_with_handler(slow)
    httpserver.expect_request("/quick").respond_with_data(
        rss(rss_items(1, prefix="Quick")), content_type=RSS_CONTENT_TYPE
    )
    slow_id = create_feed(feeds_app, httpserver.url_for("/slow"), ["data"])
    quick_id = create_feed(feeds_app, httpserver.url_for("/quick"), ["data"])
    try:
        slow_result, quick_result = poll(feeds_app, slow_id, quick_id)
        assert not release.is_set(), "the poll gave up before the server answered"
    finally:
        release.set()
    assert slow_result.status == feeds.PollStatus.FAILED
    assert slow_result.error.startswith("no answer within 1 s")
    assert quick_result.ingest.created == 1


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_huge_feed_is_abandoned_at_the_size_cap(feeds_app, httpserver, chunked):
    seed_topics(feeds_app)
    body = rss(rss_items(3000)).encode()
    assert len(body) > 300_000
    if chunked:
        response = Response(
            (body[i : i + 16384] for i in range(0, len(body), 16384)),
            content_type=RSS_CONTENT_TYPE,
        )
        httpserver.expect_request("/huge").respond_with_response(response)
    else:
        httpserver.expect_request("/huge").respond_with_data(body, content_type=RSS_CONTENT_TYPE)
    feed_id = create_feed(feeds_app, httpserver.url_for("/huge"), ["data"])
    [result] = poll(feeds_app, feed_id)
    assert result.status == feeds.PollStatus.FAILED
    assert "larger than the 300,000-byte limit" in result.error
    assert count(feeds_app, Article) == 0


def test_file_urls_are_refused(feeds_app, cli, tmp_path):
    seed_topics(feeds_app)
    local = tmp_path / "feed.xml"
    local.write_text(rss(rss_items(1)))
    result = cli("feeds", "add", local.as_uri(), "--topic", "data")
    assert result.exit_code == 1
    assert "only http and https feeds can be fetched, not file:" in result.output
    assert count(feeds_app, Feed) == 0

    sneaked_in = create_feed(feeds_app, local.as_uri(), ["data"])
    [polled] = poll(feeds_app, sneaked_in)
    assert polled.status == feeds.PollStatus.FAILED and "not file:" in polled.error
    assert count(feeds_app, Article) == 0


def test_loopback_is_refused_unless_allowed(app, httpserver):
    """``app`` has the default settings: private and loopback addresses refused."""
    seed_topics(app)
    httpserver.expect_request("/feed").respond_with_data(
        rss(rss_items(1)), content_type=RSS_CONTENT_TYPE
    )
    url = httpserver.url_for("/feed").replace("localhost", "127.0.0.1")
    result = app.test_cli_runner().invoke(args=["feeds", "add", url, "--topic", "data"])
    assert result.exit_code == 1
    assert "127.0.0.1 resolves to a private, loopback or reserved address" in result.output

    feed_id = create_feed(app, url, ["data"])
    [polled] = poll(app, feed_id)
    assert polled.status == feeds.PollStatus.FAILED and "loopback" in polled.error
    assert httpserver.log == [], "no request reached the server"
    assert count(app, Article) == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/feed",
        "http://192.168.0.10/feed",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/feed",
        "http://[::ffff:127.0.0.1]/feed",
        "http://0.0.0.0/feed",
        "http://100.64.0.1/feed",
        "gopher://news.example.org/feed",
        "http:///feed",
    ],
)
def test_urls_that_are_never_fetched(url):
    with pytest.raises(fetching.RefusedURL):
        fetching.check_url(url, allow_private=False)


def test_public_address_is_allowed():
    fetching.check_url("https://93.184.215.14/feed.xml", allow_private=False)


def feed_warnings(caplog) -> list[str]:
    """Warnings from the poller (the local feed server logs its requests from its own thread)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "alertsvc.articles.feeds" and r.levelno == logging.WARNING
    ]


def test_feed_health_flags_failing_and_stale_feeds(feeds_app, httpserver, cli, caplog):
    seed_topics(feeds_app)
    httpserver.expect_request("/down").respond_with_data("", status=500)
    old = utcnow() - timedelta(days=30)
    httpserver.expect_request("/quiet").respond_with_data(
        rss([{**item, "pub_date": old} for item in rss_items(1)]), content_type=RSS_CONTENT_TYPE
    )
    down = create_feed(feeds_app, httpserver.url_for("/down"), ["data"])
    quiet = create_feed(feeds_app, httpserver.url_for("/quiet"), ["data"])

    caplog.set_level(logging.WARNING, logger="alertsvc.articles.feeds")
    poll(feeds_app, down, quiet)
    listing = cli("feeds", "list").output
    assert "FAILING" not in listing, "one failure is below the threshold of 2"
    assert "STALE: nothing new for over 14 days" in listing
    assert feed_warnings(caplog) == [
        f"feed {quiet} ({httpserver.url_for('/quiet')}) is stale: nothing new for over 14 days"
    ]

    caplog.clear()
    poll(feeds_app, down, quiet)
    listing = cli("feeds", "list").output
    assert "FAILING: 2 errors in a row" in listing
    assert "last error" in listing and "HTTP 500" in listing
    [warning] = feed_warnings(caplog)
    assert warning.startswith(f"feed {down} ") and "has failed 2 times in a row" in warning
    assert feed_row(feeds_app, down).consecutive_failures == 2


def test_one_failure_at_a_threshold_of_one_reads_as_one_error(app_with, httpserver):
    app = app_with(**{**FEED_SETTINGS, "FEEDS_FAILURE_THRESHOLD": 1})
    seed_topics(app)
    httpserver.expect_request("/down-once").respond_with_data("", status=500)
    down = create_feed(app, httpserver.url_for("/down-once"), ["data"])

    poll(app, down)
    listing = app.test_cli_runner().invoke(args=["feeds", "list"]).output
    assert "FAILING: 1 error in a row" in listing


def test_a_success_resets_the_failure_count(feeds_app, httpserver):
    seed_topics(feeds_app)
    httpserver.expect_ordered_request("/flaky").respond_with_data("", status=502)
    httpserver.expect_ordered_request("/flaky").respond_with_data(
        rss(rss_items(1)), content_type=RSS_CONTENT_TYPE
    )
    feed_id = create_feed(feeds_app, httpserver.url_for("/flaky"), ["data"])
    poll(feeds_app, feed_id)
    assert feed_row(feeds_app, feed_id).consecutive_failures == 1
    poll(feeds_app, feed_id)
    feed = feed_row(feeds_app, feed_id)
    assert feed.consecutive_failures == 0
    assert "HTTP 502" in feed.last_error and feed.last_success_at > feed.last_error_at


def test_one_poll_per_feed_at_a_time(feeds_app, httpserver):
    seed_topics(feeds_app)
    feed_id = create_feed(feeds_app, httpserver.url_for("/leased"), ["data"])
    now = utcnow()
    with feeds_app.app_context():
        lease = timedelta(minutes=5)
        assert feeds.claim_feed(feed_id, now=now, lease=lease, due_only=True) is not None
        db.session.commit()
        assert feeds.claim_feed(feed_id, now=now, lease=lease, due_only=False) is None
        db.session.commit()
    [busy] = poll(feeds_app, feed_id)
    assert busy.status == feeds.PollStatus.BUSY
    assert httpserver.log == []
    with feeds_app.app_context():
        later = now + timedelta(minutes=6)
        assert feeds.claim_feed(feed_id, now=later, lease=lease, due_only=False) is not None
        db.session.rollback()


def test_scheduler_job_polls_only_due_feeds(feeds_app, httpserver):
    from alertsvc.scheduler import build_scheduler

    seed_topics(feeds_app)
    httpserver.expect_request("/due").respond_with_data(
        rss(rss_items(1)), content_type=RSS_CONTENT_TYPE
    )
    due = create_feed(feeds_app, httpserver.url_for("/due"), ["data"])
    create_feed(
        feeds_app,
        httpserver.url_for("/later"),
        ["data"],
        next_poll_at=utcnow() + timedelta(minutes=10),
    )
    scheduler = build_scheduler(feeds_app, lock=None)
    job = scheduler.get_job("poll_due_feeds")
    assert job.max_instances == 1

    job.func()
    job.func()
    assert [r.path for r, _ in httpserver.log] == ["/due"], "polled once; the other is not due"
    feed = feed_row(feeds_app, due)
    interval = timedelta(seconds=feeds_app.config["FEEDS_POLL_INTERVAL_SECONDS"])
    assert feed.next_poll_at == feed.last_polled_at + interval


def test_a_feed_that_moved_permanently_is_polled_at_its_new_address(feeds_app, httpserver):
    seed_topics(feeds_app)
    httpserver.expect_request("/old").respond_with_data(
        "", status=301, headers={"Location": "/new"}
    )
    httpserver.expect_request("/new").respond_with_data(
        rss(rss_items(1)), content_type=RSS_CONTENT_TYPE
    )
    httpserver.expect_request("/elsewhere").respond_with_data(
        "", status=302, headers={"Location": "/new"}
    )
    moved = create_feed(feeds_app, httpserver.url_for("/old"), ["data"])
    visiting = create_feed(feeds_app, httpserver.url_for("/elsewhere"), ["data"])

    poll(feeds_app, moved, visiting)
    assert feed_row(feeds_app, moved).url == httpserver.url_for("/new")
    assert feed_row(feeds_app, visiting).url == httpserver.url_for("/elsewhere"), "302: stays"

    httpserver.clear_log()
    poll(feeds_app, moved)
    assert [request.path for request, _ in httpserver.log] == ["/new"]


def test_a_move_onto_another_feeds_address_is_left_for_the_operator(feeds_app, httpserver, caplog):
    seed_topics(feeds_app)
    httpserver.expect_request("/old").respond_with_data(
        "", status=308, headers={"Location": "/new"}
    )
    httpserver.expect_request("/new").respond_with_data(
        rss(rss_items(1)), content_type=RSS_CONTENT_TYPE
    )
    old = create_feed(feeds_app, httpserver.url_for("/old"), ["data"])
    create_feed(feeds_app, httpserver.url_for("/new"), ["data"])

    with caplog.at_level(logging.WARNING, logger="alertsvc.articles.feeds"):
        [result] = poll(feeds_app, old)
    assert result.status == feeds.PollStatus.FETCHED
    assert feed_row(feeds_app, old).url == httpserver.url_for("/old")
    assert "which is already another feed" in caplog.text


def test_a_failing_feed_is_polled_less_and_less_often(make_app, httpserver):
    app = make_app(
        FEEDS_ALLOW_PRIVATE_ADDRESSES=True,
        FEEDS_POLL_INTERVAL_SECONDS=600,
        FEEDS_MAX_BACKOFF_SECONDS=3000,
    )
    seed_topics(app)
    httpserver.expect_request("/down").respond_with_data("", status=503)
    feed_id = create_feed(app, httpserver.url_for("/down"), ["data"])
    waits = []
    for _ in range(5):
        poll(app, feed_id)
        feed = feed_row(app, feed_id)
        waits.append(round((feed.next_poll_at - feed.last_error_at).total_seconds()))
    assert waits == [600, 1200, 2400, 3000, 3000]

    httpserver.clear()
    httpserver.expect_request("/down").respond_with_data(
        rss(rss_items(1)), content_type=RSS_CONTENT_TYPE
    )
    poll(app, feed_id)
    feed = feed_row(app, feed_id)
    assert round((feed.next_poll_at - feed.last_success_at).total_seconds()) == 600


def test_feeds_are_fetched_at_the_same_time(make_app):
    """Each feed's server answers only once all three requests have arrived, which can
    happen only if the three are in flight together; sequential polling would time out."""
    app = make_app(
        FEEDS_ALLOW_PRIVATE_ADDRESSES=True, FEEDS_POLL_CONCURRENCY=3, FEEDS_TIMEOUT_SECONDS=5
    )
    seed_topics(app)
    all_arrived = threading.Barrier(3, timeout=4)

    def together(request):
        all_arrived.wait()
        name = request.path.strip("/")
        return Response(rss(rss_items(1, prefix=name)), content_type=RSS_CONTENT_TYPE)

    server = HTTPServer(threaded=True)
    server.start()
    try:
        ids = []
        for name in ("one", "two", "three"):
            server.expect_request(f"/{name}").respond_with_handler(together)
            ids.append(create_feed(app, server.url_for(f"/{name}"), ["data"]))
        results = poll(app, *ids)
    finally:
        server.clear()
        if server.is_running():
            server.stop()
    assert [r.status for r in results] == [feeds.PollStatus.FETCHED] * 3
    assert [r.feed_id for r in results] == ids
    assert count(app, Article) == 3
