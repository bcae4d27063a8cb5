"""Probes and RSS text for the articles and API tests; rows come from tests.factories."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import format_datetime
from html import escape

from flask import Flask
from sqlalchemy import event, select

from alertsvc.extensions import db
from alertsvc.models import Article, Feed, utcnow


def feed_row(app: Flask, feed_id: int) -> Feed:
    with app.app_context():
        feed = db.session.get(Feed, feed_id)
        db.session.expunge(feed)
        return feed


def articles(app: Flask) -> list[dict]:
    """Every stored article as a dict with its topic slugs, oldest id first."""
    with app.app_context():
        return [
            {
                "id": a.id,
                "guid": a.guid,
                "url": a.url,
                "title": a.title,
                "summary": a.summary,
                "author": a.author,
                "published_at": a.published_at,
                "source": a.source,
                "feed_id": a.feed_id,
                "topics": sorted(t.slug for t in a.topics),
                "revision": a.revision,
                "alerts_processed_at": a.alerts_processed_at,
                "changed_at": a.changed_at,
                "major_update_at": a.major_update_at,
            }
            for a in db.session.scalars(select(Article).order_by(Article.id))
        ]


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """Record every SQL statement the app's engine runs inside the block (one per execute or
    executemany call), to check that writes are absent or that work is set-based."""
    with app.app_context():
        engine = db.engine
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def article_writes(seen: list[str]) -> list[str]:
    pattern = re.compile(r"^(INSERT INTO|UPDATE|DELETE FROM) (articles|article_topics)\b", re.I)
    return [s for s in seen if pattern.match(s)]


# -- feed documents --------------------------------------------------------------------------


def rfc822(value: datetime) -> str:
    return format_datetime(value.astimezone(UTC), usegmt=True)


def rss(items: Sequence[dict], title: str = "Public Technology") -> str:
    """An RSS 2.0 document; each item: title, link, and optional guid, description,
    categories, pub_date (datetime), author, content (content:encoded)."""
    parts = []
    for item in items:
        fields = [f"<title>{escape(item['title'])}</title>", f"<link>{escape(item['link'])}</link>"]
        if "guid" in item:
            fields.append(f'<guid isPermaLink="false">{escape(item["guid"])}</guid>')
        if "description" in item:
            fields.append(f"<description>{escape(item['description'])}</description>")
        if "content" in item:
            fields.append(f"<content:encoded><![CDATA[{item['content']}]]></content:encoded>")
        for category in item.get("categories", ()):
            fields.append(f"<category>{escape(category)}</category>")
        if "pub_date" in item:
            fields.append(f"<pubDate>{rfc822(item['pub_date'])}</pubDate>")
        if "author" in item:
            fields.append(f"<dc:creator>{escape(item['author'])}</dc:creator>")
        parts.append("<item>" + "".join(fields) + "</item>")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        f"<title>{escape(title)}</title><link>https://news.example.org/</link>"
        "<description>News</description>" + "".join(parts) + "</channel></rss>"
    )


def rss_items(count: int, *, start: int = 0, prefix: str = "Story") -> list[dict]:
    now = utcnow()
    return [
        {
            "title": f"{prefix} {n}",
            "link": f"https://news.example.org/{prefix.lower()}-{n}",
            "guid": f"{prefix.lower()}-{n}",
            "description": f"About {prefix.lower()} number {n}.",
            "pub_date": now,
        }
        for n in range(start, start + count)
    ]
