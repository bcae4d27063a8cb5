"""Articles in: one ingestion path for feeds, the JSON API and the CLI.

``ingest_articles`` is set-based: whatever the batch size, it looks up the batch's GUIDs in
one query per thousand, inserts the new articles and their topic links with one multi-row
statement each, and updates changed articles with one executemany. Nothing runs a query per
article. Like every service it never commits: the caller owns the transaction.

Each item's text is cleaned by :mod:`alertsvc.articles.cleaning` before it is compared or
stored; the topics it joins come from the rules :mod:`alertsvc.topics` keeps (keyword
queries, category mappings) plus the sender's and the feed's topics.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import bindparam, insert, select, update

from alertsvc.articles.cleaning import (
    AUTHOR_MAX,
    URL_MAX,
    clean_summary,
    clean_title,
    cut,
    has_credentials,
    is_web_url,
    normalise_url,
    summary_text,
    without_credentials,
)
from alertsvc.database import insert_skipping_existing
from alertsvc.delivery.wakeup import ARTICLES_CHANNEL, notify_once
from alertsvc.extensions import db
from alertsvc.html import CONTROL_CHARACTERS, collapse
from alertsvc.models import (
    Article,
    ArticleSource,
    CategoryMapping,
    Topic,
    article_topics,
    feed_topics,
    utcnow,
)
from alertsvc.topics.keywords import Document, Query, QueryError, parse_query, words
from alertsvc.topics.services import SLUG_PATTERN, normalise_category

log = logging.getLogger(__name__)

# A longer GUID (in UTF-8) is stored as its SHA-256: still unique and stable, and within
# what a PostgreSQL b-tree index entry can hold (about 2,700 bytes).
GUID_INDEX_BYTES = 1024
LOOKUP_CHUNK = 1000


@dataclass
class ArticleInput:
    """One article as a feed, the API or the CLI gives it, before cleaning.

    ``topics`` are topic slugs the sender chose; ``categories`` are the feed's (or sender's)
    categories or tags, mapped to topics through category mappings. ``major_update`` asks
    for subscribers to be alerted again if the article changed.
    """

    title: str
    url: str
    guid: str | None = None
    summary: str = ""
    author: str = ""
    published_at: datetime | None = None
    updated_at: datetime | None = None
    topics: Sequence[str] = ()
    categories: Sequence[str] = ()
    major_update: bool = False
    title_is_html: bool = False


class ItemStatus(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"


@dataclass
class ItemOutcome:
    """What happened to one input item, in input order."""

    status: ItemStatus
    guid: str | None
    article_id: int | None = None
    reason: str | None = None


@dataclass
class IngestResult:
    """What a batch did. ``alert_ids``: articles subscribers should now be alerted about."""

    outcomes: list[ItemOutcome] = field(default_factory=list)
    alert_ids: list[int] = field(default_factory=list)
    newest_published_at: datetime | None = None

    def _ids(self, status: ItemStatus) -> list[int]:
        return list(
            dict.fromkeys(
                o.article_id
                for o in self.outcomes
                if o.status == status and o.article_id is not None
            )
        )

    @property
    def created_ids(self) -> list[int]:
        return self._ids(ItemStatus.CREATED)

    @property
    def updated_ids(self) -> list[int]:
        return self._ids(ItemStatus.UPDATED)

    @property
    def created(self) -> int:
        return len(self.created_ids)

    @property
    def updated(self) -> int:
        return len(self.updated_ids)

    @property
    def unchanged(self) -> int:
        return sum(1 for o in self.outcomes if o.status == ItemStatus.UNCHANGED)

    @property
    def skipped(self) -> int:
        return sum(1 for o in self.outcomes if o.status == ItemStatus.SKIPPED)


class UnknownTopics(ValueError):
    """Some topic slugs in the batch name no topic."""

    def __init__(self, slugs: Iterable[str]) -> None:
        self.slugs = sorted(set(slugs))
        super().__init__(f"no such topic: {', '.join(self.slugs)}")


@dataclass
class _Prepared:
    index: int
    guid: str
    url: str
    title: str
    summary: str
    author: str
    published_at: datetime
    updated_at: datetime | None
    topics: Sequence[str]
    categories: Sequence[str]
    major_update: bool


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _prepare(index: int, item: ArticleInput, now: datetime) -> _Prepared | ItemOutcome:
    """The stored form of one item, or why it is skipped.

    A publication time later than ``now`` (a feed's clock or time zone wrong, a typo in an
    API call) is taken as now, so no email says an article was published in 2099.

    A link with a user name or password (only a feed's can get here: the API and CLI
    refuse one) is stored without them. Credentials must never be published on pages and
    in emails, and ``trusted.example@evil.example`` must not pass for trusted.example; but
    the feed is its publisher's to fix, so neither the item nor the poll fails for it. The
    link without them is where it really leads, and its normalised form, the GUID of an
    item without one, has always left them out.
    """
    url = CONTROL_CHARACTERS.sub("", item.url).strip()
    if not is_web_url(url) or len(url) > URL_MAX:
        return ItemOutcome(ItemStatus.SKIPPED, item.guid, reason="no http(s) link")
    if has_credentials(url):
        url = without_credentials(url)
    summary = clean_summary(item.summary or "", base_url=url)
    title = clean_title(item.title or "", is_html=item.title_is_html)
    if not title:
        title = cut(summary_text(summary), 120)
    if not title:
        return ItemOutcome(ItemStatus.SKIPPED, item.guid, reason="no title")
    guid = collapse(item.guid or "") or normalise_url(url)
    if len(guid.encode()) > GUID_INDEX_BYTES:
        guid = "sha256:" + hashlib.sha256(guid.encode()).hexdigest()
    return _Prepared(
        index=index,
        guid=guid,
        url=url,
        title=title,
        summary=summary,
        author=cut(collapse(item.author or ""), AUTHOR_MAX),
        published_at=min(_aware(item.published_at) or now, now),
        updated_at=_aware(item.updated_at),
        topics=item.topics,
        categories=item.categories,
        major_update=item.major_update,
    )


def _chunks(values: Sequence[str], size: int = LOOKUP_CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def topic_ids_by_slug(slugs: Iterable[str]) -> dict[str, int]:
    """The id of each topic named, or :class:`UnknownTopics` listing the slugs that name none.

    Callers that report progress (``articles import``) call it first, so a typo is the only
    thing they print.
    """
    wanted = set(slugs)
    if not wanted:
        return {}
    possible = {slug for slug in wanted if SLUG_PATTERN.match(slug)}
    by_slug = dict(
        db.session.execute(select(Topic.slug, Topic.id).where(Topic.slug.in_(possible))).all()
    )
    unknown = wanted - by_slug.keys()
    if unknown:
        raise UnknownTopics(unknown)
    return by_slug


class _TopicRules:
    """Everything that puts an article in topics, loaded once per batch."""

    def __init__(self, prepared: list[_Prepared], feed_id: int | None) -> None:
        self.by_slug = topic_ids_by_slug(slug for item in prepared for slug in item.topics)
        self.feed_topic_ids: set[int] = set()
        if feed_id is not None:
            self.feed_topic_ids = set(
                db.session.scalars(
                    select(feed_topics.c.topic_id).where(feed_topics.c.feed_id == feed_id)
                )
            )
        self.by_category: dict[str, set[int]] = {}
        if any(item.categories for item in prepared):
            mappings = db.session.execute(
                select(CategoryMapping.category, CategoryMapping.topic_id).where(
                    (CategoryMapping.feed_id.is_(None)) | (CategoryMapping.feed_id == feed_id)
                )
            )
            for category, topic_id in mappings:
                self.by_category.setdefault(category, set()).add(topic_id)
        # A retired topic takes no new articles, however they would reach it (a sender's
        # slug, the feed's topics, a category mapping, its keyword query). Its slug is still
        # known, so a sender naming it is not refused: the article goes to its other topics.
        self.retired_ids = set(
            db.session.scalars(select(Topic.id).where(Topic.retired_at.is_not(None)))
        )
        self.keyword_queries: list[tuple[int, Query]] = []
        for topic_id, slug, text in db.session.execute(
            select(Topic.id, Topic.slug, Topic.query).where(
                Topic.query.is_not(None), Topic.retired_at.is_(None)
            )
        ):
            try:
                self.keyword_queries.append((topic_id, parse_query(text)))
            except QueryError as error:
                log.warning("keyword topic %s has a query that cannot be used: %s", slug, error)

    def topic_ids(self, item: _Prepared) -> set[int]:
        ids = {self.by_slug[slug] for slug in item.topics} | self.feed_topic_ids
        for category in item.categories:
            ids |= self.by_category.get(normalise_category(category), set())
        if self.keyword_queries:
            documents = [Document(words(item.title)), Document(words(summary_text(item.summary)))]
            ids.update(
                topic_id
                for topic_id, query in self.keyword_queries
                if topic_id not in ids and query.matches_documents(documents)
            )
        return ids - self.retired_ids


def ingest_articles(
    items: Sequence[ArticleInput],
    source: ArticleSource,
    *,
    feed_id: int | None = None,
    alert: bool = True,
    now: datetime | None = None,
) -> IngestResult:
    """Store a batch of articles: create the new, update the changed, leave the rest alone.

    - Unique by GUID (or the normalised URL when there is none). When a batch holds the same
      GUID twice, the first wins and the second is reported unchanged.
    - Sending an article again exactly as stored writes nothing and alerts nobody, even if
      it is marked as a major update: retries are harmless.
    - A changed title or summary updates the row (and adds any topics it now matches; topics
      are never taken away). The update alerts again when it is marked ``major_update`` or
      the ``ALERT_ON_UPDATE`` setting is on: ``major_update_at`` is stamped, ``revision``
      goes up and the article is due for immediate alerts again.
    - ``alert=False`` stores new articles as already alerted (a feed's first poll, an
      archive import): subscribers are not mailed a backlog.
    - Topics: the sender's ``topics``, the feed's topics, category mappings for the feed
      (and for every feed), and every keyword topic whose query the title or summary match.

    Raises :class:`UnknownTopics` before writing anything if a topic slug names no topic.
    """
    now = now or utcnow()
    result = IngestResult(outcomes=[None] * len(items))  # type: ignore[list-item]
    prepared: list[_Prepared] = []
    first_by_guid: dict[str, _Prepared] = {}
    duplicates: list[_Prepared] = []
    for index, item in enumerate(items):
        outcome = _prepare(index, item, now)
        if isinstance(outcome, ItemOutcome):
            result.outcomes[index] = outcome
        elif outcome.guid in first_by_guid:
            duplicates.append(outcome)
        else:
            first_by_guid[outcome.guid] = outcome
            prepared.append(outcome)
    if not prepared:
        return result
    result.newest_published_at = max(item.published_at for item in prepared)
    rules = _TopicRules(prepared, feed_id)

    table = Article.__table__
    existing: dict[str, tuple[int, str, str]] = {}
    for chunk in _chunks([item.guid for item in prepared]):
        for article_id, guid, title, summary in db.session.execute(
            select(table.c.id, table.c.guid, table.c.title, table.c.summary).where(
                table.c.guid.in_(chunk)
            )
        ):
            existing[guid] = (article_id, title, summary)

    new = [item for item in prepared if item.guid not in existing]
    created = _create(new, source, feed_id, rules, alert=alert, now=now)
    realert_all = bool(current_app.config["ALERT_ON_UPDATE"])
    changed: list[tuple[_Prepared, int, bool]] = []
    for item in prepared:
        if item.guid in existing:
            article_id, title, summary = existing[item.guid]
            if (title, summary) == (item.title, item.summary):
                result.outcomes[item.index] = ItemOutcome(
                    ItemStatus.UNCHANGED, item.guid, article_id
                )
            else:
                realert = realert_all or item.major_update
                changed.append((item, article_id, realert))
                result.outcomes[item.index] = ItemOutcome(ItemStatus.UPDATED, item.guid, article_id)
                if realert:
                    result.alert_ids.append(article_id)
        elif item.guid in created:
            result.outcomes[item.index] = ItemOutcome(
                ItemStatus.CREATED, item.guid, created[item.guid]
            )
            if alert:
                result.alert_ids.append(created[item.guid])
        else:
            # Another transaction stored this GUID between our lookup and our insert.
            result.outcomes[item.index] = ItemOutcome(ItemStatus.UNCHANGED, item.guid)
    _update(changed, rules, now=now)
    if result.alert_ids:
        # The scheduler runs immediate alerts when this commits, not at its next interval.
        notify_once(db.session, ARTICLES_CHANNEL)
    for item in duplicates:
        first = result.outcomes[first_by_guid[item.guid].index]
        status = ItemStatus.UNCHANGED if first.status == ItemStatus.CREATED else first.status
        result.outcomes[item.index] = ItemOutcome(status, item.guid, first.article_id)
    return result


def _create(
    items: list[_Prepared],
    source: ArticleSource,
    feed_id: int | None,
    rules: _TopicRules,
    *,
    alert: bool,
    now: datetime,
) -> dict[str, int]:
    """Insert new articles and their topic links; return guid -> id of the rows inserted.

    ON CONFLICT DO NOTHING: a concurrent ingest of the same GUID (a feed poll racing an API
    call) leaves one row and no error; the loser reports the item as unchanged.
    """
    if not items:
        return {}
    table = Article.__table__
    rows = [
        {
            "guid": item.guid,
            "url": item.url,
            "title": item.title,
            "summary": item.summary,
            "author": item.author,
            "published_at": item.published_at,
            "updated_at": item.updated_at,
            "source": str(source),
            "feed_id": feed_id,
            "created_at": now,
            "alerts_processed_at": None if alert else now,
        }
        for item in items
    ]
    statement = insert_skipping_existing(table, ["guid"]).returning(table.c.id, table.c.guid)
    created = dict((guid, article_id) for article_id, guid in db.session.execute(statement, rows))
    links = [
        {"article_id": created[item.guid], "topic_id": topic_id}
        for item in items
        if item.guid in created
        for topic_id in sorted(rules.topic_ids(item))
    ]
    if links:
        db.session.execute(insert(article_topics), links)
    return created


def _update(
    changed: list[tuple[_Prepared, int, bool]], rules: _TopicRules, *, now: datetime
) -> None:
    if not changed:
        return
    table = Article.__table__
    values = {
        "title": bindparam("new_title"),
        "summary": bindparam("new_summary"),
        "url": bindparam("new_url"),
        "author": bindparam("new_author"),
        "updated_at": bindparam("new_updated_at", type_=table.c.updated_at.type),
        "changed_at": bindparam("new_changed_at", type_=table.c.changed_at.type),
    }
    plain = [entry for entry in changed if not entry[2]]
    realerting = [entry for entry in changed if entry[2]]
    for group, extra in (
        (plain, {}),
        (
            realerting,
            {
                "major_update_at": bindparam("new_changed_at", type_=table.c.changed_at.type),
                "revision": table.c.revision + 1,
                "alerts_processed_at": None,
            },
        ),
    ):
        if not group:
            continue
        statement = (
            update(table).where(table.c.id == bindparam("article_id")).values(**values, **extra)
        )
        db.session.execute(
            statement,
            [
                {
                    "article_id": article_id,
                    "new_title": item.title,
                    "new_summary": item.summary,
                    "new_url": item.url,
                    "new_author": item.author,
                    "new_updated_at": item.updated_at or now,
                    "new_changed_at": now,
                }
                for item, article_id, _ in group
            ],
        )
    links = [
        {"article_id": article_id, "topic_id": topic_id}
        for item, article_id, _ in changed
        for topic_id in sorted(rules.topic_ids(item))
    ]
    if links:
        db.session.execute(
            insert_skipping_existing(article_topics, ["article_id", "topic_id"]),
            links,
        )


class UnknownArticle(LookupError):
    """No article has the id given."""


def mark_major_update(article_id: int, now: datetime | None = None) -> Article:
    """Alert the article's subscribers again, as an ingest marked ``major_update`` does when
    the text changed: ``major_update_at`` stamped, ``revision`` up, due for immediate alerts
    (any earlier failures and parking of its alerts forgotten). Raises
    :class:`UnknownArticle`."""
    now = now or utcnow()
    article = db.session.get(Article, article_id)
    if article is None:
        raise UnknownArticle(f"no article {article_id}")
    article.major_update_at = now
    article.changed_at = now
    article.revision = (article.revision or 0) + 1
    article.alerts_processed_at = None
    article.alert_attempts = 0
    article.alert_next_attempt_at = None
    article.alert_last_error = None
    article.alert_parked_at = None
    # The scheduler runs immediate alerts when this commits, not at its next interval.
    notify_once(db.session, ARTICLES_CHANNEL)
    return article


SEARCH_MAX = 500


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_articles(
    text: str = "", *, before_id: int | None = None, limit: int = 50
) -> list[Article]:
    """Articles newest first (by id: the order they arrived), ``limit`` at most, older than
    ``before_id`` when paging on. ``text`` matches an id (all digits), an address or GUID
    (exactly, when it starts with http), or otherwise words in the title (any case)."""
    query = select(Article).order_by(Article.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(Article.id < before_id)
    text = collapse(text)[:SEARCH_MAX]
    if text:
        title = Article.title.ilike(_like_pattern(text), escape="\\")
        if text.isdigit() and len(text) < 19:
            query = query.where(title | (Article.id == int(text)))
        elif text.lower().startswith(("http://", "https://")):
            query = query.where((Article.url == text) | (Article.guid == text) | title)
        else:
            query = query.where(title)
    return list(db.session.scalars(query))
