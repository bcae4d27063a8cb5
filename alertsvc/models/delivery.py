"""What delivery learns and decides: suppressed addresses, what SES told us about each
message, the SNS messages already handled, and pauses of sending."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from alertsvc.extensions import db
from alertsvc.models.types import UTCDateTime, allowed_values, utcnow


class SuppressionReason(enum.StrEnum):
    BOUNCE = "bounce"  # a permanent (hard) bounce
    COMPLAINT = "complaint"  # the reader marked a message as spam
    TRANSIENT_BOUNCES = "transient_bounces"  # too many soft bounces within the window
    OPERATOR = "operator"  # added by hand (``alertsvc suppressions add``)


class Suppression(db.Model):
    """An address that is never sent to, and why.

    ``email`` is in the form subscribers and outbox rows carry (``normalise_email``), so a
    claim can compare addresses directly. Removing a suppression deletes the row; the
    events that led to it stay in ``delivery_events``.
    """

    __tablename__ = "suppressions"
    __table_args__ = (allowed_values("reason", SuppressionReason),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    reason: Mapped[str] = mapped_column(String(32))
    # Who said so: "ses" (a notification), "operator" (the CLI or an operator page).
    source: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeliveryEventKind(enum.StrEnum):
    DELIVERY = "delivery"
    PERMANENT_BOUNCE = "permanent_bounce"
    TRANSIENT_BOUNCE = "transient_bounce"
    COMPLAINT = "complaint"


class DeliveryEvent(db.Model):
    """One thing SES reported about one recipient of one message (from an SNS
    notification): delivered, bounced (permanently or for now), or complained about.

    ``outbox_id`` is the row sent, found by SES's message id (``provider_message_id``);
    it is empty when the message was not ours to find (sent before the outbox kept ids).
    The reputation guard counts these against recent sends.
    """

    __tablename__ = "delivery_events"
    __table_args__ = (
        allowed_values("kind", DeliveryEventKind),
        Index("ix_delivery_events_email", "email", "kind", "occurred_at"),
        # Events that arrive before their message's send is recorded are joined to it later
        # by SES's message id (delivery.feedback).
        Index("ix_delivery_events_provider_message_id", "provider_message_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    email: Mapped[str] = mapped_column(String(320))
    outbox_id: Mapped[int | None] = mapped_column(Integer, index=True)
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # SES's words: bounce type and subtype, the diagnostic code, the feedback type.
    detail: Mapped[str | None] = mapped_column(Text)


class SnsMessage(db.Model):
    """An SNS message already handled: SNS delivers at least once, we act at most once."""

    __tablename__ = "sns_messages"

    message_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    topic_arn: Mapped[str] = mapped_column(String(256))
    message_type: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class PauseScope(enum.StrEnum):
    # Digests and alerts only: confirmation and manage-link emails still go.
    SUBSCRIPTIONS = "subscriptions"
    # Everything: SES itself has paused or suspended the account.
    ALL = "all"


class SendingPause(db.Model):
    """A pause of sending, kept as history: in force while ``resumed_at`` is empty.

    At most one pause of each scope is in force (a partial unique index), so workers that
    trip the reputation guard together record it once.
    """

    __tablename__ = "sending_pauses"
    __table_args__ = (
        allowed_values("scope", PauseScope),
        Index(
            "uq_sending_pauses_in_force",
            "scope",
            unique=True,
            sqlite_where=text("resumed_at IS NULL"),
            postgresql_where=text("resumed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    # Who paused: the operator as the audit log names them ("operator:ann@example.org",
    # "cli:root"; ``pauses.pause_actor``), "reputation guard", "ses".
    paused_by: Mapped[str] = mapped_column(String(64))
    paused_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resumed_by: Mapped[str | None] = mapped_column(String(64))
