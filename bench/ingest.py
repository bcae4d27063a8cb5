"""Ingestion throughput on PostgreSQL: articles/s through the JSON API and through a feed.

    uv run python bench/ingest.py

- API: 10,000 articles POSTed as 20 batches of 500 by one client to gunicorn (2 workers)
  serving the real app, then the same batches again (all already known).
- Feed: one RSS feed of 5,000 items served by a local HTTP server, polled by the real
  poller (fetch, parse, clean, topics, insert); then polled again with one item added, and
  again with the same bytes.
- Floor, in the same run: the same 5,000 cleaned rows (and their topic links) written with a
  plain multi-row INSERT, no lookups, no cleaning, no keyword matching.

Every article goes through the three demo keyword topics below and category mappings, as in
production. Creates (and drops) its own database, ``alertsvc_bench_ingest``; set
``BENCH_DATABASE_URL`` to use another server.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _support import (
    alertsvc_command,
    exit_cleanly_on_sigterm,
    fresh_database,
    gunicorn,
    render_url,
)

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/alertsvc_bench_ingest"
)
API_ARTICLES = 10_000
BATCH = 500
FEED_ITEMS = 5_000
KEYWORD_TOPICS = [
    ("nhs", "NHS", "NHS"),
    ("ai", "Artificial intelligence", '"artificial intelligence"'),
    ("cyber", "Cyber and ransomware", "cyber OR ransomware"),
]
NOW = datetime.now(UTC).replace(microsecond=0)
SUBJECTS = [
    "NHS trusts adopt shared records platform",
    "Councils test artificial intelligence for casework",
    "Ransomware attack disrupts supplier",
    "GDS publishes roadmap for online services",
    "Data strategy promises better statistics",
]


def article(n: int, prefix: str) -> dict:
    subject = SUBJECTS[n % len(SUBJECTS)]
    return {
        "title": f"{subject} ({prefix} {n})",
        "url": f"https://news.example.org/{prefix}/{n}",
        "guid": f"{prefix}-{n}",
        "summary": (
            f"<p>{subject}. The <b>department</b> said the change, number {n}, would "
            "reach every region by next year, after a pilot with three partners. "
            f'<a href="https://news.example.org/{prefix}/{n}">Read more</a></p>'
        ),
        "author": "Public Technology reporter",
        "published": (NOW - timedelta(minutes=n)).isoformat(),
        "categories": ["Digital government", "Data" if n % 2 else "Cyber security"],
        "topics": ["digital-government"],
    }


def rss(items: list[dict]) -> bytes:
    parts = []
    for item in items:
        published = datetime.fromisoformat(item["published"])
        categories = "".join(f"<category>{escape(c)}</category>" for c in item["categories"])
        parts.append(
            "<item>"
            f"<title>{escape(item['title'])}</title><link>{escape(item['url'])}</link>"
            f'<guid isPermaLink="false">{escape(item["guid"])}</guid>'
            f"<description>{escape(item['summary'])}</description>{categories}"
            f"<pubDate>{format_datetime(published, usegmt=True)}</pubDate>"
            f"<author>{escape(item['author'])}</author></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        "<title>Bench feed</title><link>https://news.example.org/</link>"
        "<description>Bench</description>" + "".join(parts) + "</channel></rss>"
    ).encode()


class FeedServer:
    """A local HTTP server answering every GET with ``self.body``."""

    def __init__(self) -> None:
        self.body = b""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/feed.xml"

    @contextmanager
    def running(self) -> Iterator[FeedServer]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def rate(count: int, seconds: float) -> str:
    return f"{count:>6,} articles in {seconds:6.2f} s = {count / seconds:>7,.0f} articles/s"


def prepare(url: str):
    """Schema, demo topics, keyword topics, category mappings and an API token."""
    from alertsvc import create_app
    from alertsvc.api.tokens import create_api_token
    from alertsvc.database import transaction
    from alertsvc.topics.services import add_topic, map_category

    env = {"ALERTSVC_DATABASE_URL": url, "ALERTSVC_ENV": "development"}
    alertsvc_command(["db", "upgrade"], env)
    alertsvc_command(["seed-demo"], env)
    app = create_app(
        {
            "ENV": "development",
            "SQLALCHEMY_DATABASE_URI": url,
            "FEEDS_ALLOW_PRIVATE_ADDRESSES": True,
            "FEEDS_MAX_BYTES": 64 * 1024 * 1024,
            "FEEDS_TIMEOUT_SECONDS": 120,
        }
    )
    with app.app_context(), transaction():
        for slug, name, query in KEYWORD_TOPICS:
            add_topic(slug, name, query=query)
        map_category("Cyber security", "cyber-security")
        map_category("Data", "data")
        _, token = create_api_token("bench")
    return app, token


def bench_api(url: str, token: str) -> None:
    batches = [
        [article(n, "api") for n in range(start, start + BATCH)]
        for start in range(0, API_ARTICLES, BATCH)
    ]
    env = {"ALERTSVC_DATABASE_URL": url, "ALERTSVC_ENV": "development"}
    with gunicorn("wsgi:app", env=env, workers=2, ready_path="/healthz") as server:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
            for label, expected in (("new", 201), ("again, all known", 200)):
                started = time.perf_counter()
                for batch in batches:
                    response = client.post("/api/v1/articles", json=batch)
                    if response.status_code != expected:
                        raise SystemExit(f"API answered {response.status_code}: {response.text}")
                elapsed = time.perf_counter() - started
                print(f"API   ({label:<16}) {rate(API_ARTICLES, elapsed)}")


def bench_feed(app) -> list[dict]:
    from alertsvc.articles import feeds, fetching, jobs, parsing
    from alertsvc.database import transaction
    from alertsvc.extensions import db

    items = [article(n, "feed") for n in range(FEED_ITEMS)]
    server = FeedServer()
    server.body = rss(items)
    with server.running(), app.app_context():
        with transaction():
            feed_id = feeds.add_feed(server.url, ["data"]).id

        settings = fetching.FetchSettings.from_config(app.config)
        started = time.perf_counter()
        fetched = fetching.fetch_feed(server.url, settings)
        parsed = parsing.parse_feed(fetched.body, server.url)
        fetch_parse = time.perf_counter() - started

        def poll(label: str, expect_created: int) -> None:
            started = time.perf_counter()
            [result] = jobs.poll_feeds([feed_id], due_only=False)
            elapsed = time.perf_counter() - started
            if result.status == feeds.PollStatus.FAILED:
                raise SystemExit(f"poll failed: {result.error}")
            created = result.ingest.created if result.ingest else 0
            if created != expect_created:
                raise SystemExit(f"expected {expect_created} new articles, got {result.describe()}")
            print(f"feed  ({label:<16}) {rate(FEED_ITEMS, elapsed)}  [{result.describe()}]")

        print(
            f"feed  (fetch+parse only) {rate(FEED_ITEMS, fetch_parse)}  "
            f"[{len(fetched.body) / 1e6:.1f} MB, {len(parsed.items)} items]"
        )
        poll("new", FEED_ITEMS)
        server.body = rss([article(FEED_ITEMS, "feed"), *items])
        poll("1 new, 5000 known", 1)
        poll("same bytes", 0)
        db.session.remove()
    return items


def bench_floor(app, items: list[dict]) -> None:
    """The same rows, already clean, in plain multi-row INSERTs (1,000 rows a statement, as
    the driver pages the real thing) into copies of the tables, straight through psycopg."""
    from sqlalchemy import text

    from alertsvc.articles.cleaning import clean_summary
    from alertsvc.extensions import db

    columns = ("guid", "url", "title", "summary", "author", "published_at", "source", "created_at")
    now = datetime.now(UTC)
    rows = [
        (
            f"floor-{item['guid']}",
            item["url"],
            item["title"],
            clean_summary(item["summary"], base_url=item["url"]),
            item["author"],
            datetime.fromisoformat(item["published"]),
            "feed",
            now,
        )
        for item in items
    ]
    with app.app_context():
        with db.engine.begin() as connection:
            connection.execute(text("CREATE TABLE floor_articles (LIKE articles INCLUDING ALL)"))
            connection.execute(
                text("CREATE TABLE floor_article_topics (LIKE article_topics INCLUDING ALL)")
            )
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            started = time.perf_counter()
            for start in range(0, len(rows), 1000):
                page = rows[start : start + 1000]
                placeholders = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(page))
                cursor.execute(
                    f"INSERT INTO floor_articles ({', '.join(columns)}) VALUES {placeholders} "
                    "RETURNING id",
                    [value for row in page for value in row],
                )
                ids = [row[0] for row in cursor.fetchall()]
                links = ", ".join(["(%s, %s)"] * (2 * len(ids)))
                cursor.execute(
                    f"INSERT INTO floor_article_topics (article_id, topic_id) VALUES {links}",
                    [value for article_id in ids for value in (article_id, 1, article_id, 2)],
                )
            raw.commit()
            elapsed = time.perf_counter() - started
        finally:
            raw.close()
        print(f"floor (multi-row INSERT) {rate(len(rows), elapsed)}")


def main() -> int:
    exit_cleanly_on_sigterm()
    with fresh_database(DATABASE_URL) as url:
        url = render_url(url)
        app, token = prepare(url)
        database = url.rsplit("/", 1)[-1]
        print(f"PostgreSQL, database {database}; 3 keyword topics; API batches of {BATCH}")
        bench_api(url, token)
        items = bench_feed(app)
        bench_floor(app, items)
        with app.app_context():
            from alertsvc.extensions import db

            db.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
