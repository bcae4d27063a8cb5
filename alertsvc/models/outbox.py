from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ColumnElement, Index, Integer, String, Text, and_, cast
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column

from alertsvc.extensions import db
from alertsvc.models.types import UTCDateTime, allowed_values, utcnow


class OutboxStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    # SES reported the message accepted by the recipient's mail server.
    DELIVERED = "delivered"
    FAILED = "failed"
    # Not sent: the address is on the suppression list.
    SUPPRESSED = "suppressed"


class OutboxEmail(db.Model):
    """One email waiting to be sent, being sent, sent, or given up on.

    Rows are written in the same transaction as the change that causes them, so an email is
    queued if and only if that change committed. Workers claim rows under a lease
    (``status='sending'``, ``lease_expires_at``); a worker that dies leaves its lease to run
    out and another worker takes the row again. The subscriber-specific links (manage,
    unsubscribe) are added when the message is built, from ``subscriber_id`` and
    ``unsubscribe_topic_ids``, so a body can be shared between many rows.

    Digest and alert rows are written by the hundred thousand, so they carry only what is
    theirs: the address, subject and Message-ID are filled in when a worker first claims
    the row (from the subscriber, the shared body, and the row's id), and kept for the
    record. For the same reason ``subscriber_id`` and ``body_id`` have no foreign keys: the
    rows are written from subscribers and bodies read in the same statement, and neither is
    ever deleted.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        allowed_values("status", OutboxStatus),
        # In the claim's order, so a claim reads only the rows it takes.
        Index("ix_outbox_claim", "status", "next_attempt_at", "id"),
        # The reputation guard reads the most recent sends; SNS events find their row.
        Index("ix_outbox_sent_at", "sent_at"),
        Index("ix_outbox_provider_message_id", "provider_message_id"),
        # What a run or an article produced (operator pages, retrying a run's failures).
        Index("ix_outbox_run_id", "run_id", "status"),
        Index("ix_outbox_article_id", "article_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    template: Mapped[str] = mapped_column(String(64))
    to_address: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(300))
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    subscriber_id: Mapped[int | None] = mapped_column(Integer, index=True)
    unsubscribe_topic_ids: Mapped[list[int] | None] = mapped_column(JSON)
    body_id: Mapped[int | None] = mapped_column(Integer)
    # The digest run (digests) or the article (immediate alerts) this email came from.
    run_id: Mapped[int | None] = mapped_column(Integer)
    article_id: Mapped[int | None] = mapped_column(Integer)
    message_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Of those attempts, the ones whose lease ran out (the worker died or hung on the row):
    # WORKER_MAX_ATTEMPTS counts these, so that throttled and other retried sends, which
    # the retry age bounds, never use up what a poison message is allowed.
    lease_runouts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)

    @hybrid_property
    def is_subscription_email(self) -> bool:
        """Emails about subscriptions (digests, alerts, the welcome after confirming) carry
        RFC 8058 one-click unsubscribe headers; a subscriptions pause holds them."""
        return self.unsubscribe_topic_ids is not None

    @is_subscription_email.inplace.expression
    @classmethod
    def _is_subscription_email_sql(cls) -> ColumnElement[bool]:
        """The same in SQL. The ORM stores a Python ``None`` in a JSON column as JSON
        ``null``, not SQL NULL (rows queued by ``queue_email``), while set-based inserts may
        leave SQL NULL: neither is a subscription email, so ``IS NOT NULL`` alone is wrong."""
        return and_(
            cls.unsubscribe_topic_ids.is_not(None),
            cast(cls.unsubscribe_topic_ids, Text) != "null",
        )
