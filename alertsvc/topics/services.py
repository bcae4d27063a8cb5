"""Topic administration: topics and keyword topics, category mappings, the demo topics.

Which topics an article joins is worked out by ingestion (``alertsvc.articles.services``)
from the rules kept here: a topic's keyword query (parsed by :mod:`alertsvc.topics.keywords`)
and category mappings (categories normalised by :func:`normalise_category`). Like every
service these never commit: the caller owns the transaction.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import func, select

from alertsvc.extensions import db
from alertsvc.html import collapse, html_to_text
from alertsvc.models import Article, CategoryMapping, Feed, Topic, utcnow
from alertsvc.topics.keywords import QueryError, parse_query

CATEGORY_MAX = 300
DESCRIPTION_MAX = 1000
QUERY_MAX = 1000
SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# C0 and C1 controls (CR, LF, NEL among them), the Unicode line and paragraph separators, and
# the bidirectional overrides and isolates (a name shown in another order than stored; the
# admin pages refuse them too, see alertsvc.characters).
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

DEMO_TOPICS: list[tuple[str, str, str]] = [
    (
        "digital-government",
        "Digital government",
        "Online public services, GOV.UK and digital transformation across departments.",
    ),
    ("data", "Data", "Open data, data sharing, analytics and statistics in the public sector."),
    (
        "cyber-security",
        "Cyber security",
        "Threats, incidents and defences for public bodies.",
    ),
    (
        "health-and-care",
        "Health and care",
        "Digital health, the NHS and social care technology.",
    ),
    ("local-digital", "Local digital", "Councils, local services and shared platforms."),
    (
        "police-and-justice",
        "Police and justice",
        "Technology in policing, courts, prisons and probation.",
    ),
    (
        "emerging-technology",
        "Emerging technology",
        "AI, automation and other new technology in government.",
    ),
]


class TopicError(ValueError):
    """A topic could not be created as asked."""


def validate_topic(slug: str, name: str) -> None:
    """Refuse a slug or name readers could not use: a name must differ from every other
    topic's (in any case), or the signup form shows two choices alike."""
    if not SLUG_PATTERN.fullmatch(slug) or len(slug) > 80:  # fullmatch: "$" allows "\n"
        raise TopicError(
            f"slug {slug!r} must be lower-case letters and digits separated by single hyphens"
        )
    if not name.strip() or len(name) > 200:
        raise TopicError("name must be between 1 and 200 characters")
    if _CONTROL_CHARACTERS.search(name):
        raise TopicError("name must not contain line breaks or control characters")
    taken = db.session.scalar(
        select(Topic.slug)
        .where(func.lower(Topic.name) == name.strip().lower(), Topic.slug != slug)
        .limit(1)
    )
    if taken is not None:
        raise TopicError(
            f"name {name.strip()!r} is taken by topic {taken!r}: readers choosing topics "
            "could not tell the two apart"
        )


def add_topic(slug: str, name: str, description: str = "", query: str | None = None) -> Topic:
    """A topic readers can follow. With ``query`` it is a keyword topic: new articles join it
    when their title or summary match the query (see :mod:`alertsvc.topics.keywords`)."""
    validate_topic(slug, name)
    if len(description) > DESCRIPTION_MAX:
        raise TopicError(f"description must be at most {DESCRIPTION_MAX} characters")
    parsed = None
    if query is not None:
        if len(query) > QUERY_MAX:
            raise TopicError(f"the query must be at most {QUERY_MAX} characters")
        try:
            parsed = parse_query(query)
        except QueryError as error:
            raise TopicError(f"query {query!r}: {error}") from error
    if db.session.scalar(select(Topic.id).where(Topic.slug == slug)) is not None:
        raise TopicError(f"a topic with slug {slug!r} already exists")
    topic = Topic(
        slug=slug,
        name=name.strip(),
        description=description.strip(),
        query=parsed.text if parsed else None,
    )
    db.session.add(topic)
    return topic


def list_topics() -> list[Topic]:
    """Every topic, retired or not (operators, the CLI)."""
    return list(db.session.scalars(select(Topic).order_by(func.lower(Topic.name))))


def active_topics() -> list[Topic]:
    """The topics readers can choose: not retired."""
    return list(
        db.session.scalars(
            select(Topic).where(Topic.retired_at.is_(None)).order_by(func.lower(Topic.name))
        )
    )


def update_topic(topic: Topic, name: str, description: str = "", query: str | None = None) -> None:
    """Change a topic's name, description and (keyword topics only) query.

    The slug stays as created: readers' links, API senders and category mappings name the
    topic by it. A topic without a query stays one: making it a keyword topic would not
    reach the articles it already has, only new ones, which is what a new topic is for.
    """
    validate_topic(topic.slug, name)
    if len(description) > DESCRIPTION_MAX:
        raise TopicError(f"description must be at most {DESCRIPTION_MAX} characters")
    if topic.query is None and query:
        raise TopicError("only a keyword topic has a query")
    if topic.query is not None:
        if query is None or not query.strip():
            raise TopicError("a keyword topic needs a query")
        if len(query) > QUERY_MAX:
            raise TopicError(f"the query must be at most {QUERY_MAX} characters")
        try:
            topic.query = parse_query(query).text
        except QueryError as error:
            raise TopicError(f"query {query!r}: {error}") from error
    topic.name = name.strip()
    topic.description = description.strip()


def retire_topic(topic: Topic, now: datetime) -> bool:
    """Retire a topic: readers can no longer choose it and no new article joins it.

    Existing subscriptions stay (they are the record of who followed it); with no new
    articles they send nothing new. Returns False if it was already retired.
    """
    if topic.retired_at is not None:
        return False
    topic.retired_at = now
    return True


def unretire_topic(topic: Topic) -> bool:
    """Offer a retired topic again; returns False if it was not retired."""
    if topic.retired_at is None:
        return False
    topic.retired_at = None
    return True


def seed_demo_topics() -> int:
    """Create the demo topics that are missing. Returns how many were created."""
    existing = set(db.session.scalars(select(Topic.slug)))
    created = 0
    for slug, name, description in DEMO_TOPICS:
        if slug not in existing:
            db.session.add(Topic(slug=slug, name=name, description=description))
            created += 1
    return created


def preview_query(query: str, *, days: int = 30, limit: int = 50) -> list[Article]:
    """Recent articles (published in the last ``days``) that ``query`` matches, newest first.

    Raises :class:`QueryError` for a query that cannot be understood.
    """
    parsed = parse_query(query)
    since = utcnow() - timedelta(days=days)
    matches: list[Article] = []
    for article in db.session.scalars(
        select(Article)
        .where(Article.published_at >= since)
        .order_by(Article.published_at.desc(), Article.id.desc())
        .execution_options(yield_per=500)
    ):
        if parsed.matches(article.title, html_to_text(article.summary)):
            matches.append(article)
            if len(matches) >= limit:
                break
    return matches


def normalise_category(value: str) -> str:
    """A feed category or tag as mappings store and match it: trimmed, case-folded."""
    return collapse(value).casefold()[:CATEGORY_MAX]


def map_category(category: str, topic_slug: str, feed_id: int | None = None) -> CategoryMapping:
    """Put articles with ``category`` (from ``feed_id``, or any feed) in a topic."""
    normalised = normalise_category(category)
    if not normalised:
        raise TopicError("the category must have some text")
    topic = (
        db.session.scalar(select(Topic).where(Topic.slug == topic_slug))
        if SLUG_PATTERN.match(topic_slug)
        else None
    )
    if topic is None:
        raise TopicError(f"no topic with slug {topic_slug!r}")
    if feed_id is not None and db.session.get(Feed, feed_id) is None:
        raise TopicError(f"no feed with id {feed_id}")
    found = db.session.scalar(
        select(CategoryMapping).where(
            CategoryMapping.category == normalised,
            CategoryMapping.topic_id == topic.id,
            CategoryMapping.feed_id.is_(None)
            if feed_id is None
            else CategoryMapping.feed_id == feed_id,
        )
    )
    if found is not None:
        return found
    mapping = CategoryMapping(category=normalised, topic=topic, feed_id=feed_id)
    db.session.add(mapping)
    return mapping


def list_category_mappings() -> list[CategoryMapping]:
    return list(
        db.session.scalars(
            select(CategoryMapping).order_by(
                CategoryMapping.feed_id.nulls_first(), CategoryMapping.category
            )
        )
    )
