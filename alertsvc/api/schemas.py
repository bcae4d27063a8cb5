"""What the JSON API returns (marshmallow), which with the article input schema
(:mod:`alertsvc.articles.schemas`) is also its OpenAPI document."""

from __future__ import annotations

from datetime import UTC

import marshmallow as ma
from marshmallow import fields, validate

from alertsvc.articles.cleaning import DATE_RANGE_ERROR, EARLIEST, LATEST
from alertsvc.articles.schemas import JsonBoolean
from alertsvc.articles.services import ItemStatus
from alertsvc.topics.services import SLUG_PATTERN


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


# -- what the read routes return, and the arguments they take ----------------------------

MAX_ID = 2**31 - 1
PAGE_MAX = 100


class _Strict(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class TopicSchema(ma.Schema):
    slug = fields.String()
    name = fields.String()
    description = fields.String()
    query = fields.String(
        allow_none=True, metadata={"description": "A keyword topic's saved query."}
    )
    created_at = fields.DateTime()
    retired_at = fields.DateTime(
        allow_none=True, metadata={"description": "Set once the topic is retired."}
    )


class TopicListSchema(ma.Schema):
    topics = fields.List(fields.Nested(TopicSchema))


class FeedHealthSchema(ma.Schema):
    failing = fields.Boolean(metadata={"description": "FEEDS_FAILURE_THRESHOLD errors in a row."})
    stale = fields.Boolean(metadata={"description": "Nothing new for FEEDS_STALE_DAYS."})
    parked = fields.Boolean(metadata={"description": "Not polled until retried."})
    disabled = fields.Boolean(metadata={"description": "An operator stopped polling it."})
    problems = fields.List(fields.String())


class FeedSchema(ma.Schema):
    id = fields.Integer()
    url = fields.String()
    title = fields.String()
    topics = fields.List(fields.String(), metadata={"description": "Topic slugs."})
    created_at = fields.DateTime()
    last_polled_at = fields.DateTime(allow_none=True)
    last_success_at = fields.DateTime(allow_none=True)
    last_error = fields.String(allow_none=True)
    last_error_at = fields.DateTime(allow_none=True)
    consecutive_failures = fields.Integer()
    newest_item_at = fields.DateTime(allow_none=True)
    next_poll_at = fields.DateTime(allow_none=True)
    parked_at = fields.DateTime(allow_none=True)
    disabled_at = fields.DateTime(allow_none=True)
    health = fields.Nested(FeedHealthSchema)


class FeedListSchema(ma.Schema):
    feeds = fields.List(fields.Nested(FeedSchema))


class ArticleSchema(ma.Schema):
    id = fields.Integer()
    guid = fields.String()
    url = fields.String()
    title = fields.String()
    summary = fields.String(metadata={"description": "Sanitised HTML."})
    author = fields.String()
    published_at = fields.DateTime()
    updated_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime(metadata={"description": "When it arrived here."})
    major_update_at = fields.DateTime(allow_none=True)
    source = fields.String(metadata={"description": "feed, api or cli."})
    feed_id = fields.Integer(allow_none=True)
    topics = fields.List(fields.String(), metadata={"description": "Topic slugs."})


class ArticleListQuerySchema(_Strict):
    topic = fields.String(
        validate=[
            validate.Length(min=1, max=80),
            validate.Regexp(SLUG_PATTERN, error="Not a topic slug."),
        ],
        metadata={"description": "A topic slug."},
    )
    since = fields.AwareDateTime(
        default_timezone=UTC,
        validate=validate.Range(min=EARLIEST, max=LATEST, error=DATE_RANGE_ERROR),
        metadata={"description": "Only articles published at or after this time."},
    )
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=PAGE_MAX))
    before_id = fields.Integer(
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={"description": "The next page: `next_before_id` of the previous one."},
    )


class ArticleListSchema(ma.Schema):
    articles = fields.List(fields.Nested(ArticleSchema), metadata={"description": "Newest first."})
    next_before_id = fields.Integer(
        allow_none=True, metadata={"description": "Pass as `before_id` for the next page."}
    )


class RunEmailsSchema(ma.Schema):
    queued = fields.Integer()
    sending = fields.Integer()
    sent = fields.Integer()
    delivered = fields.Integer()
    failed = fields.Integer()
    suppressed = fields.Integer()


class RunSchema(ma.Schema):
    id = fields.Integer()
    frequency = fields.String()
    status = fields.String(metadata={"description": "planning or planned."})
    trigger = fields.String(metadata={"description": "scheduler, sweeper, cli, api, admin."})
    window_start = fields.DateTime()
    window_end = fields.DateTime()
    created_at = fields.DateTime()
    planned_at = fields.DateTime(allow_none=True)
    subscriber_count = fields.Integer()
    email_count = fields.Integer(metadata={"description": "Emails the run queued."})
    attempts = fields.Integer(metadata={"description": "Failed attempts to plan it."})
    last_error = fields.String(allow_none=True)
    parked_at = fields.DateTime(allow_none=True)
    emails = fields.Nested(
        RunEmailsSchema, metadata={"description": "The run's emails by their status now."}
    )


class RunListQuerySchema(_Strict):
    frequency = fields.String(validate=validate.OneOf(["daily", "weekly"]))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=PAGE_MAX))
    before_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))


class RunListSchema(ma.Schema):
    runs = fields.List(fields.Nested(RunSchema), metadata={"description": "Newest first."})
    next_before_id = fields.Integer(allow_none=True)


class RunInSchema(_Strict):
    frequency = fields.String(required=True, validate=validate.OneOf(["daily", "weekly"]))
    at = fields.AwareDateTime(
        default_timezone=UTC,
        metadata={
            "description": "The window end (ISO 8601, rounded down to the hour; UTC without "
            "an offset). Default: the last whole hour. Not later than that."
        },
    )
    dry_run = JsonBoolean(
        load_default=False,
        metadata={"description": "Count what would be queued, and write nothing."},
    )


class RunTriggerResultSchema(ma.Schema):
    dry_run = fields.Boolean()
    already_planned = fields.Boolean(
        metadata={"description": "The run had been planned before: nothing more was queued."}
    )
    frequency = fields.String()
    window_end = fields.DateTime()
    subscribers = fields.Integer()
    emails = fields.Integer(metadata={"description": "Queued (or, for a dry run, would be)."})
    bodies = fields.Integer(metadata={"description": "Distinct digest bodies."})
    run = fields.Nested(RunSchema, allow_none=True, metadata={"description": "None if dry."})


class SubscriberAddressSchema(_Strict):
    email = fields.String(required=True, validate=validate.Length(min=1, max=320))


class ExportSubscriptionSchema(ma.Schema):
    topic = fields.String(metadata={"description": "Topic slug."})
    topic_name = fields.String()
    frequency = fields.String(metadata={"description": "immediately, daily or weekly."})
    created_at = fields.DateTime()
    ended_at = fields.DateTime(allow_none=True)
    ended_reason = fields.String(
        allow_none=True, metadata={"description": "Why it ended: unsubscribed, bounced, erased…"}
    )
    delivered_until = fields.DateTime(
        allow_none=True, metadata={"description": "Articles up to here have been sent."}
    )


class ExportSignupRequestSchema(ma.Schema):
    topic_ids = fields.List(fields.Integer())
    frequency = fields.String()
    timezone = fields.String()
    daily_hour = fields.Integer()
    weekly_day = fields.Integer(metadata={"description": "0 is Monday."})
    weekly_hour = fields.Integer()
    created_at = fields.DateTime()
    confirmed_at = fields.DateTime(allow_none=True)


class ExportDeliveryEventSchema(ma.Schema):
    kind = fields.String(metadata={"description": "What SES reported: Delivery, Bounce…"})
    email = fields.String(allow_none=True)
    occurred_at = fields.DateTime(allow_none=True)
    detail = fields.Raw(allow_none=True)


class ExportEmailSchema(ma.Schema):
    template = fields.String()
    subject = fields.String(allow_none=True)
    to_address = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    created_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)
    last_error = fields.String(allow_none=True)
    run_id = fields.Integer(allow_none=True, metadata={"description": "The digest run's id."})
    article_id = fields.Integer(allow_none=True, metadata={"description": "An alert's article."})
    events = fields.List(fields.Nested(ExportDeliveryEventSchema))


class ExportSuppressionSchema(ma.Schema):
    reason = fields.String()
    source = fields.String()
    detail = fields.String(allow_none=True)
    created_at = fields.DateTime()


class ExportDigestSchema(ma.Schema):
    frequency = fields.String()
    window_end = fields.DateTime(metadata={"description": "The end of the run's window."})
    run_id = fields.Integer(allow_none=True)
    article_count = fields.Integer()
    sent = fields.Boolean(metadata={"description": "False: due, but nothing new to send."})


class ExportAlertSchema(ma.Schema):
    article_id = fields.Integer()
    revision = fields.Integer()
    created_at = fields.DateTime()
    carried_over = fields.Boolean(
        metadata={"description": "Past the daily cap: carried into the next digest."}
    )
    digest_run_id = fields.Integer(allow_none=True)


class SubscriberExportSchema(ma.Schema):
    """Everything stored about the subscriber (``subscriptions.services.export_subscriber``)."""

    id = fields.Integer()
    email = fields.String()
    status = fields.String(metadata={"description": "pending, confirmed, unsubscribed…"})
    created_at = fields.DateTime()
    confirmed_at = fields.DateTime(allow_none=True)
    erased_at = fields.DateTime(allow_none=True)
    timezone = fields.String()
    daily_hour = fields.Integer(metadata={"description": "Local hour of the daily digest."})
    weekly_day = fields.Integer(metadata={"description": "Day of the weekly digest, 0 Monday."})
    weekly_hour = fields.Integer(metadata={"description": "Local hour of the weekly digest."})
    paused_until = fields.DateTime(allow_none=True)
    pause_ends_at = fields.DateTime(allow_none=True)
    subscriptions = fields.List(
        fields.Nested(ExportSubscriptionSchema),
        metadata={"description": "Every subscription, ended ones too, oldest first."},
    )
    signup_requests = fields.List(fields.Nested(ExportSignupRequestSchema))
    emails = fields.List(
        fields.Nested(ExportEmailSchema),
        metadata={"description": "The emails queued for them, with what SES reported."},
    )
    suppression = fields.Nested(
        ExportSuppressionSchema,
        allow_none=True,
        metadata={"description": "Set when mail to the address is stopped."},
    )
    other_delivery_events = fields.List(
        fields.Nested(ExportDeliveryEventSchema),
        metadata={"description": "What SES reported about the address, not tied to an email."},
    )
    digests = fields.List(
        fields.Nested(ExportDigestSchema),
        metadata={"description": "Each digest run that included them (the planner's ledger)."},
    )
    alerts = fields.List(
        fields.Nested(ExportAlertSchema),
        metadata={"description": "Each article alerted to them (the alert ledger)."},
    )


class ErasedSchema(ma.Schema):
    erased = fields.Boolean()
    subscriber_id = fields.Integer()


class SubscriberCountSchema(ma.Schema):
    topic = fields.String(metadata={"description": "Topic slug."})
    frequency = fields.String()
    confirmed = fields.Integer(
        metadata={"description": "Confirmed subscribers (not erased) with a live subscription."}
    )
    pending = fields.Integer(
        metadata={
            "description": "Subscribers (not erased) with a signup asking for it that waits "
            "for its confirm link; one who asked twice counts once."
        }
    )


class DayCountSchema(ma.Schema):
    day = fields.String(metadata={"description": "UTC date, YYYY-MM-DD."})
    queued = fields.Integer(metadata={"description": "Emails queued that day."})
    sent = fields.Integer(metadata={"description": "Emails sent (or delivered) that day."})
    failed = fields.Integer(
        metadata={"description": "Of the emails queued that day, those that failed."}
    )
    suppressed = fields.Integer(
        metadata={"description": "Of the emails queued that day, those suppressed."}
    )


class StatsSchema(ma.Schema):
    subscribers = fields.List(fields.Nested(SubscriberCountSchema))
    outbox = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": "Every outbox row by status."},
    )
    oldest_queued_seconds = fields.Integer(
        allow_none=True, metadata={"description": "Age of the oldest queued email."}
    )
    emails_per_day = fields.List(
        fields.Nested(DayCountSchema), metadata={"description": "The last 30 days, oldest first."}
    )
