"""What the JSON API returns (marshmallow), which with the article input schema
(:mod:`alertsvc.articles.schemas`) is also its OpenAPI document."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from alertsvc.articles.services import ItemStatus


class ArticleOutcomeSchema(ma.Schema):
    id = fields.Integer(allow_none=True, metadata={"description": "The article's id."})
    guid = fields.String(allow_none=True)
    status = fields.String(
        validate=validate.OneOf([status.value for status in ItemStatus]),
        metadata={"description": "What happened to this item."},
    )
    reason = fields.String(allow_none=True, metadata={"description": "Why it was skipped."})


class IngestResultSchema(ma.Schema):
    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()
    skipped = fields.Integer()
    articles = fields.List(
        fields.Nested(ArticleOutcomeSchema),
        metadata={"description": "One per item sent, in order."},
    )


class ErrorSchema(ma.Schema):
    error = fields.String(metadata={"description": "The HTTP status, in words."})
    detail = fields.String(allow_none=True)
    errors = fields.Dict(
        metadata={
            "description": "Field errors: by field for one article; by index, then field, "
            "for a list."
        }
    )
