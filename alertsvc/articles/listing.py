"""Articles as the JSON API lists them: newest first, a page at a time."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from alertsvc.extensions import db
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
