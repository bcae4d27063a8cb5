"""The database models, one module per entity. Import them from here."""

from alertsvc.models.article import (
    Article,
    ArticleSource,
    CategoryMapping,
    Feed,
    article_topics,
    feed_topics,
)
from alertsvc.models.delivery import (
    DeliveryEvent,
    DeliveryEventKind,
    PauseScope,
    SendingPause,
    SnsMessage,
    Suppression,
    SuppressionReason,
)
from alertsvc.models.digest import (
    AlertDelivery,
    DigestDelivery,
    DigestRun,
    DigestRunSlot,
    EmailBody,
    RunStatus,
)
from alertsvc.models.operator import AuditEntry, Operator, OperatorRole
from alertsvc.models.outbox import OutboxEmail, OutboxStatus
from alertsvc.models.subscriber import (
    EndedReason,
    Frequency,
    SignupRequest,
    Subscriber,
    Subscription,
)
from alertsvc.models.topic import Topic
from alertsvc.models.types import UTCDateTime, utcnow

__all__ = [
    "AlertDelivery",
    "Article",
    "ArticleSource",
    "AuditEntry",
    "CategoryMapping",
    "DeliveryEvent",
    "DeliveryEventKind",
    "DigestDelivery",
    "DigestRun",
    "DigestRunSlot",
    "EmailBody",
    "EndedReason",
    "Feed",
    "Frequency",
    "Operator",
    "OperatorRole",
    "OutboxEmail",
    "OutboxStatus",
    "PauseScope",
    "RunStatus",
    "SendingPause",
    "SignupRequest",
    "SnsMessage",
    "Subscriber",
    "Subscription",
    "Suppression",
    "SuppressionReason",
    "Topic",
    "UTCDateTime",
    "article_topics",
    "feed_topics",
    "utcnow",
]
