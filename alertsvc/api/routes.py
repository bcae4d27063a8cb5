"""The JSON API's articles, topics and feeds routes: parse, validate, call a service, answer.

The access rule (token, scope) and the error shape are in :mod:`alertsvc.api.blueprint`.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app
from marshmallow import RAISE, ValidationError
from sqlalchemy import select

from alertsvc.api.blueprint import (
    bp,
    invalid,
    json_body,
    json_body_errors,
    not_found,
    requires,
)
from alertsvc.api.schemas import (
    MAX_ID,
    ArticleListQuerySchema,
    ArticleListSchema,
    ArticleSchema,
    ErrorSchema,
    FeedListSchema,
    IngestResultSchema,
    TopicListSchema,
    TopicSchema,
)
from alertsvc.articles.feeds import HealthRules, list_feeds
from alertsvc.articles.listing import list_articles
from alertsvc.articles.schemas import ArticleInSchema
from alertsvc.articles.services import ArticleInput, UnknownTopics, ingest_articles
from alertsvc.audit import record_audit
from alertsvc.database import transaction
from alertsvc.extensions import db
from alertsvc.models import Article, ArticleSource, Feed, Topic, utcnow
from alertsvc.topics.services import SLUG_PATTERN, list_topics


def _load(payload: Any) -> tuple[list[ArticleInput], bool] | Response:
    many = isinstance(payload, list)
    if not many and not isinstance(payload, dict):
        return invalid({"_schema": ["Send an article (a JSON object) or a list of articles."]})
    limit = current_app.config["API_MAX_BATCH"]
    if many and not 1 <= len(payload) <= limit:
        return invalid({"_schema": [f"Send between 1 and {limit} articles."]})
    try:
        items = ArticleInSchema(many=True).load(payload if many else [payload])
    except ValidationError as error:
        messages: Any = error.messages
        return invalid(messages if many else messages.get(0, messages))
    return items, many


@bp.route("/articles", methods=["POST"])
@bp.doc(
    summary="Add or update articles",
    description=(
        "Scope `articles:write`. Send one article, or a list of up to `API_MAX_BATCH` "
        "(default 500). Articles are unique by `guid` (default: the normalised `url`). "
        "Sending an article again exactly as it is changes nothing and alerts nobody; a "
        "changed title or summary updates it, and alerts subscribers again only if "
        "`major_update` is true (or the service is set to alert on every update). Answers "
        "201 if any article was new, else 200."
    ),
    requestBody={
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/ArticleIn"},
                        {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/ArticleIn"},
                            "minItems": 1,
                            "description": "Up to API_MAX_BATCH articles (default 500).",
                        },
                    ]
                }
            }
        },
    },
)
@bp.response(201, IngestResultSchema, description="At least one article was new.")
@bp.alt_response(200, schema=IngestResultSchema, description="Every article was already known.")
@json_body_errors
@bp.alt_response(422, schema=ErrorSchema, description="Invalid articles: see `errors`.")
@requires("articles:write")
def post_articles() -> Any:
    payload = json_body("the articles")
    if isinstance(payload, Response):
        return payload
    loaded = _load(payload)
    if isinstance(loaded, Response):
        return loaded
    items, many = loaded
    try:
        with transaction():
            result = ingest_articles(items, ArticleSource.API)
            record_audit(
                "article.ingest",
                "articles",
                {
                    "created": result.created,
                    "updated": result.updated,
                    "unchanged": result.unchanged,
                    "skipped": result.skipped,
                },
            )
    except UnknownTopics as error:
        errors = {}
        for index, item in enumerate(items):
            unknown = [slug for slug in item.topics if slug in error.slugs]
            if unknown:
                errors[index] = {"topics": [f"No topic with slug {slug!r}." for slug in unknown]}
        return invalid(errors if many else errors[0])
    body = {
        "created": result.created,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "skipped": result.skipped,
        "articles": [
            {
                "id": outcome.article_id,
                "guid": outcome.guid,
                "status": outcome.status.value,
                "reason": outcome.reason,
            }
            for outcome in result.outcomes
        ],
    }
    return body, 201 if result.created else 200


def _article(article: Article) -> dict[str, Any]:
    return {
        "id": article.id,
        "guid": article.guid,
        "url": article.url,
        "title": article.title,
        "summary": article.summary,
        "author": article.author,
        "published_at": article.published_at,
        "updated_at": article.updated_at,
        "created_at": article.created_at,
        "major_update_at": article.major_update_at,
        "source": article.source,
        "feed_id": article.feed_id,
        "topics": sorted(topic.slug for topic in article.topics),
    }


@bp.route("/articles", methods=["GET"])
@bp.doc(
    summary="List articles",
    description="Scope `read`. Newest first; `next_before_id` pages back. Filters: a topic "
    "slug, and `since` (published at or after).",
)
@bp.arguments(ArticleListQuerySchema, location="query", as_kwargs=True, unknown=RAISE)
@bp.response(200, ArticleListSchema)
@bp.alt_response(422, schema=ErrorSchema, description="Invalid arguments: see `errors`.")
@requires("read")
def get_articles(limit: int, **filters: Any) -> Any:
    with transaction():
        found = list_articles(
            limit=limit,
            topic_slug=filters.get("topic"),
            since=filters.get("since"),
            before_id=filters.get("before_id"),
        )
        articles = [_article(article) for article in found]
    full = len(articles) == limit
    return {"articles": articles, "next_before_id": articles[-1]["id"] if full else None}


@bp.route("/articles/<int:article_id>", methods=["GET"])
@bp.doc(summary="One article", description="Scope `read`.")
@bp.response(200, ArticleSchema)
@bp.alt_response(404, schema=ErrorSchema, description="No such article.")
@requires("read")
def get_article(article_id: int) -> Any:
    with transaction():
        article = db.session.get(Article, article_id) if article_id <= MAX_ID else None
        if article is None:
            return not_found(f"No article {article_id}.")
        return _article(article)


def _topic(topic: Topic) -> dict[str, Any]:
    return {
        "slug": topic.slug,
        "name": topic.name,
        "description": topic.description,
        "query": topic.query,
        "created_at": topic.created_at,
        "retired_at": topic.retired_at,
    }


@bp.route("/topics", methods=["GET"])
@bp.doc(summary="List topics", description="Scope `read`. Retired topics included.")
@bp.response(200, TopicListSchema)
@requires("read")
def get_topics() -> Any:
    with transaction():
        return {"topics": [_topic(topic) for topic in list_topics()]}


@bp.route("/topics/<slug>", methods=["GET"])
@bp.doc(summary="One topic", description="Scope `read`.")
@bp.response(200, TopicSchema)
@bp.alt_response(404, schema=ErrorSchema, description="No such topic.")
@requires("read")
def get_topic(slug: str) -> Any:
    with transaction():
        topic = (
            db.session.scalar(select(Topic).where(Topic.slug == slug))
            if SLUG_PATTERN.fullmatch(slug)
            else None
        )
        if topic is None:
            return not_found("No topic with that slug.")
        return _topic(topic)


def _feed(feed: Feed, rules: HealthRules) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": feed.id,
        "url": feed.url,
        "title": feed.title,
        "topics": [topic.slug for topic in feed.topics],
        "created_at": feed.created_at,
        "last_polled_at": feed.last_polled_at,
        "last_success_at": feed.last_success_at,
        "last_error": feed.last_error,
        "last_error_at": feed.last_error_at,
        "consecutive_failures": feed.consecutive_failures,
        "newest_item_at": feed.newest_item_at,
        "next_poll_at": feed.next_poll_at,
        "parked_at": feed.parked_at,
        "disabled_at": feed.disabled_at,
        "health": {
            "failing": rules.is_failing(feed),
            "stale": rules.is_stale(feed, now),
            "parked": feed.parked_at is not None,
            "disabled": feed.disabled_at is not None,
            "problems": rules.problems(feed, now),
        },
    }


@bp.route("/feeds", methods=["GET"])
@bp.doc(
    summary="List feeds with their health",
    description="Scope `read`. `health.problems` says in words what is wrong, if anything.",
)
@bp.response(200, FeedListSchema)
@requires("read")
def get_feeds() -> Any:
    rules = HealthRules.from_config(current_app.config)
    with transaction():
        return {"feeds": [_feed(feed, rules) for feed in list_feeds()]}
