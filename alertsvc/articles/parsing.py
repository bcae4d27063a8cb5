"""Reading RSS and Atom bytes into articles to ingest (feedparser); no network, no database."""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import feedparser

from alertsvc.articles.cleaning import is_article_date
from alertsvc.articles.fetching import FeedError
from alertsvc.articles.services import ArticleInput


@dataclass
class ParsedFeed:
    title: str
    items: list[ArticleInput] = field(default_factory=list)


def _when(value: time.struct_time | None) -> datetime | None:
    """A feed's date, or None when it has none or one outside ``is_article_date``."""
    if not value:
        return None
    try:
        when = datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return when if is_article_date(when) else None


def parse_feed(body: bytes, url: str, content_type: str | None = None) -> ParsedFeed:
    """Read RSS 0.9x/1.0/2.0 or Atom bytes into articles. Raise :class:`FeedError` if not a feed.

    Slightly malformed feeds that feedparser can still read are accepted (many real feeds
    are); anything it cannot recognise as a feed at all is an error. An item's summary is its
    description (or Atom summary), else its full content (``content:encoded``). A
    publication date in the future is kept here and taken as now when the article is
    stored (``ingest_articles``), whatever its source.

    A date outside the range the API and ``articles add`` accept (``is_article_date``:
    1970 to 2100; a CMS's zero date often comes out as 1900) is treated as no date, as
    an item without one is: published falls back to the updated date, then to when it is
    stored. The item is kept: the rest of it is good, and skipping it would lose an
    article over one field its publisher got wrong and we cannot ask them to fix (the API
    and CLI refuse such a date instead: their sender is there to correct it).

    feedparser's own HTML sanitiser and link rewriting are off: they are most of its time on
    a big feed, and ``clean_summary`` does both (nh3, links made absolute) on what we keep.
    """
    parsed = feedparser.parse(
        body,
        response_headers={
            "content-location": url,
            "content-type": content_type or "application/xml",
        },
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    if not parsed.get("version"):
        problem = parsed.get("bozo_exception")
        raise FeedError(f"not an RSS or Atom feed{f': {problem}' if problem else ''}")
    items = []
    for entry in parsed.entries:
        summary = entry.get("summary") or ""
        if not summary and entry.get("content"):
            summary = entry["content"][0].get("value", "")
        # dict.get: feedparser's own get() maps a missing updated_parsed to published_parsed.
        updated = _when(dict.get(entry, "updated_parsed"))
        published = _when(dict.get(entry, "published_parsed")) or updated
        items.append(
            ArticleInput(
                title=entry.get("title", ""),
                title_is_html=entry.get("title_detail", {}).get("type") == "text/html",
                url=entry.get("link", ""),
                guid=entry.get("id") or None,
                summary=summary,
                author=entry.get("author", ""),
                published_at=published,
                updated_at=updated,
                categories=[
                    tag.get("term") or tag.get("label")
                    for tag in entry.get("tags", [])
                    if tag.get("term") or tag.get("label")
                ],
            )
        )
    return ParsedFeed(title=parsed.feed.get("title", ""), items=items)
