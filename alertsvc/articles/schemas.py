"""The article input schema (marshmallow): what the JSON API and ``articles add|import`` accept.

It lives with articles because both entry points load articles through it; the API's
OpenAPI document describes it as ``ArticleIn``.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any
from urllib.parse import urlsplit

import marshmallow as ma
from marshmallow import fields, validate

from alertsvc.articles.cleaning import (
    AUTHOR_MAX,
    DATE_RANGE_ERROR,
    EARLIEST,
    GUID_MAX,
    LATEST,
    TITLE_MAX,
    URL_MAX,
    has_credentials,
)
from alertsvc.articles.services import ArticleInput
from alertsvc.topics.services import CATEGORY_MAX, SLUG_PATTERN

SUMMARY_MAX = 100_000
TOPICS_MAX = 20
CATEGORIES_MAX = 50
_TIME_RANGE = validate.Range(min=EARLIEST, max=LATEST, error=DATE_RANGE_ERROR)
# Regexp matches from the start; JSON Schema patterns search: this reads the same in both.
_HAS_TEXT = validate.Regexp(r"[\s\S]*\S", error="Must not be blank.")


def _article_address(value: str) -> None:
    """What marshmallow's ``Url`` lets through and an article's address must not have: a
    port out of range (``:99999``, which ingestion cannot take: ``is_web_url``) or a user
    name or password (``has_credentials``). ``Url`` reports everything else."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ma.ValidationError("Not a valid URL.") from None
    if has_credentials(value):
        raise ma.ValidationError(
            "Must not contain a user name or password: the address is published."
        )


class JsonBoolean(fields.Boolean):
    """JSON ``true`` or ``false`` only: not 1, 0.0, "yes" or "on", as marshmallow allows."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class ArticleInSchema(ma.Schema):
    """One article. ``guid`` defaults to the normalised ``url``; times without an offset are
    UTC; ``published`` defaults to now. ``summary`` may be HTML (cleaned to a small
    allow-list) or plain text; ``title`` is plain text."""

    class Meta:
        unknown = ma.RAISE

    title = fields.String(
        required=True, validate=[validate.Length(min=1, max=TITLE_MAX), _HAS_TEXT]
    )
    url = fields.Url(
        required=True,
        schemes={"http", "https"},
        validate=[validate.Length(max=URL_MAX), _article_address],
        metadata={"format": "uri", "description": "The article's http(s) address."},
    )
    guid = fields.String(validate=[validate.Length(min=1, max=GUID_MAX), _HAS_TEXT])
    summary = fields.String(load_default="", validate=validate.Length(max=SUMMARY_MAX))
    author = fields.String(load_default="", validate=validate.Length(max=AUTHOR_MAX))
    published = fields.AwareDateTime(default_timezone=UTC, validate=_TIME_RANGE)
    updated = fields.AwareDateTime(default_timezone=UTC, validate=_TIME_RANGE)
    topics = fields.List(
        fields.String(
            validate=[
                validate.Length(min=1, max=80),
                validate.Regexp(SLUG_PATTERN, error="Not a topic slug."),
            ]
        ),
        load_default=list,
        validate=validate.Length(max=TOPICS_MAX),
        metadata={"description": "Topic slugs. Unknown slugs are an error."},
    )
    categories = fields.List(
        fields.String(validate=validate.Length(min=1, max=CATEGORY_MAX)),
        load_default=list,
        validate=validate.Length(max=CATEGORIES_MAX),
        metadata={"description": "Categories or tags, put in topics by category mappings."},
    )
    major_update = JsonBoolean(
        load_default=False,
        metadata={
            "description": "If the article is already known and its title or summary changed, "
            "alert subscribers again."
        },
    )

    @ma.post_load
    def to_input(self, data: dict[str, Any], **kwargs: Any) -> ArticleInput:
        return ArticleInput(
            title=data["title"],
            url=data["url"],
            guid=data.get("guid"),
            summary=data["summary"],
            author=data["author"],
            published_at=data.get("published"),
            updated_at=data.get("updated"),
            topics=data["topics"],
            categories=data["categories"],
            major_update=data["major_update"],
        )
