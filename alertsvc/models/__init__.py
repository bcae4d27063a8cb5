"""The database models, one module per entity. Import them from here."""

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
    "EndedReason",
    "Frequency",
    "OutboxEmail",
    "OutboxStatus",
    "SignupRequest",
    "Subscriber",
    "Subscription",
    "Topic",
    "UTCDateTime",
    "utcnow",
]
