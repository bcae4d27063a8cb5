from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from alertsvc.extensions import db
from alertsvc.models.topic import Topic
from alertsvc.models.types import UTCDateTime, allowed_values, utcnow


class ArticleSource(enum.StrEnum):
    FEED = "feed"
    API = "api"
    CLI = "cli"


article_topics = Table(
    "article_topics",
    db.metadata,
    Column("article_id", ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_article_topics_topic_id", "topic_id", "article_id"),
)

feed_topics = Table(
    "feed_topics",
    db.metadata,
    Column("feed_id", ForeignKey("feeds.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True),
)


class Feed(db.Model):
    """An RSS or Atom feed polled for new articles, with its health."""

    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), unique=True)
    title: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    newest_item_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Polling: due when ``next_poll_at`` has passed (or is NULL). A poller claims the feed by
    # setting ``poll_lease_until`` in one conditional UPDATE, so two schedulers (or a scheduler
    # and ``feeds poll``) never poll the same feed at once; a poller that dies leaves the lease
    # to run out.
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    poll_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # SHA-256 of the last body fetched: a server that ignores conditional GET but sends the
    # same bytes again costs a hash, not a parse and an article lookup.
    content_hash: Mapped[str | None] = mapped_column(String(64))
    # Set after ``JOB_MAX_ATTEMPTS`` failed polls in a row (``alertsvc.retries``): the
    # scheduler leaves the feed alone until an operator retries it or a poll by hand succeeds.
    parked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # An operator stopped polling this feed (unlike ``parked_at``, set by failures).
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    topics: Mapped[list[Topic]] = relationship(secondary=feed_topics, order_by=Topic.slug)


class CategoryMapping(db.Model):
    """A feed category or tag that puts articles in a topic ("Cyber security" -> cyber-security).

    ``feed_id`` NULL means the mapping applies to every feed. ``category`` is stored
    case-folded and whitespace-collapsed.
    """

    __tablename__ = "category_mappings"
    __table_args__ = (UniqueConstraint("feed_id", "category", "topic_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    feed_id: Mapped[int | None] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(300))
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"))

    topic: Mapped[Topic] = relationship()


class Article(db.Model):
    """A published article, unique by GUID (or normalised URL when the feed gives none).

    ``title`` is plain text; ``summary`` is HTML already sanitised to a small allow-list.
    ``major_update_at`` is set when an update should alert subscribers again.
    """

    __tablename__ = "articles"
    __table_args__ = (
        allowed_values("source", ArticleSource),
        Index("ix_articles_created_at", "created_at"),
        Index("ix_articles_published_at", "published_at"),
        # The "Register For Alerts" box finds an article by its address. A hash index on
        # PostgreSQL: a B-tree refuses entries over ~2.7 kB, which a 2048-character URL
        # of non-ASCII characters can exceed (the reason long GUIDs are hashed).
        Index("ix_articles_url", "url", postgresql_using="hash"),
        Index(
            "ix_articles_unalerted",
            "id",
            sqlite_where=text("alerts_processed_at IS NULL"),
            postgresql_where=text("alerts_processed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    guid: Mapped[str] = mapped_column(String(2048), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    title: Mapped[str] = mapped_column(String(500))
    summary: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(300), default="")
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(8))
    feed_id: Mapped[int | None] = mapped_column(
        ForeignKey("feeds.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    major_update_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Immediate alerts: bumped by a major update; NULL ``alerts_processed_at`` means the
    # current revision still has to be alerted.
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    alerts_processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Failed attempts at this revision's alerts (``alertsvc.retries``): tried again from
    # ``alert_next_attempt_at``; parked (left for an operator) once ``alert_parked_at`` is set.
    alert_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    alert_next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    alert_last_error: Mapped[str | None] = mapped_column(Text)
    alert_parked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    topics: Mapped[list[Topic]] = relationship(secondary=article_topics, order_by=Topic.name)
