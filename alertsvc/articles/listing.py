"""Articles as the JSON API lists them (newest first, a page at a time), and found by address."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from alertsvc.articles.cleaning import URL_MAX, is_web_url, normalise_url
from alertsvc.extensions import db
from alertsvc.html import CONTROL_CHARACTERS
from alertsvc.models import Article, Topic, article_topics


def list_articles(
    *,
    limit: int,
    topic_slug: str | None = None,
    since: datetime | None = None,
    before_id: int | None = None,
) -> list[Article]:
    """Up to ``limit`` articles, newest (highest id) first, with their topics loaded.

    Paged by id (``before_id``), not by offset: a page costs the same however deep it is,
    and articles arriving meanwhile do not shift the pages.
    """
    query = (
        select(Article).options(selectinload(Article.topics)).order_by(Article.id.desc())
    ).limit(limit)
    if topic_slug is not None:
        query = query.where(
            Article.id.in_(
                select(article_topics.c.article_id)
                .join(Topic, Topic.id == article_topics.c.topic_id)
                .where(Topic.slug == topic_slug)
            )
        )
    if since is not None:
        query = query.where(Article.published_at >= since)
    if before_id is not None:
        query = query.where(Article.id < before_id)
    return list(db.session.scalars(query))


def find_article_by_address(address: str) -> Article | None:
    """The article at ``address`` (a reader's page URL), with its topics, or None.

    Matched exactly against the stored link and GUID, as given and as ingestion normalises
    a link into a GUID (no tracking parameters or fragment, lower-case host), so the
    publisher's page URL finds the article whichever way its feed identified it. If two
    articles share a link, the newest.
    """
    address = CONTROL_CHARACTERS.sub("", address).strip()
    if len(address) > URL_MAX or not is_web_url(address):
        return None
    candidates = list(dict.fromkeys([address, normalise_url(address)]))
    return db.session.scalars(
        select(Article)
        .options(selectinload(Article.topics))
        .where(or_(Article.url.in_(candidates), Article.guid.in_(candidates)))
        .order_by(Article.published_at.desc(), Article.id.desc())
        .limit(1)
    ).first()
