from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from alertsvc.extensions import db
from alertsvc.models.types import UTCDateTime, allowed_values, utcnow

if TYPE_CHECKING:
    from alertsvc.models.topic import Topic


class Frequency(enum.StrEnum):
    IMMEDIATELY = "immediately"
    DAILY = "daily"
    WEEKLY = "weekly"


class EndedReason(enum.StrEnum):
    UNSUBSCRIBED = "unsubscribed"
    FREQUENCY_CHANGED = "frequency_changed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    ERASED = "erased"


class Subscriber(db.Model):
    """One row per normalised email address, confirmed or not.

    The delivery preferences (hour, weekday, timezone, pause) belong to the person, not to a
    topic, because one digest covers all of their topics at that frequency.
    """

    __tablename__ = "subscribers"
    __table_args__ = (
        CheckConstraint("daily_hour BETWEEN 0 AND 23", name="daily_hour"),
        CheckConstraint("weekly_hour BETWEEN 0 AND 23", name="weekly_hour"),
        CheckConstraint("weekly_day BETWEEN 0 AND 6", name="weekly_day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/London")
    daily_hour: Mapped[int] = mapped_column(SmallInteger, default=7)
    weekly_day: Mapped[int] = mapped_column(SmallInteger, default=0)
    weekly_hour: Mapped[int] = mapped_column(SmallInteger, default=7)
    paused_until: Mapped[date | None] = mapped_column(Date)
    # The instant the pause ends: midnight starting ``paused_until`` in the subscriber's
    # timezone, or when they resumed. Nothing that arrived before it is sent afterwards.
    pause_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the person asked for their data to be deleted: the row stays, anonymised, so
    # that counts and delivery history stay true, and their old links stop working.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="subscriber", order_by="Subscription.id"
    )

    def __repr__(self) -> str:
        return f"<Subscriber {self.id}>"


class Subscription(db.Model):
    """A subscriber following a topic at a frequency. Append-only.

    A change of frequency ends the row (``ended_reason='frequency_changed'``) and starts a
    new one, so the history of who was subscribed to what, when, is never overwritten.
    """

    __tablename__ = "subscriptions"
    __table_args__ = (
        allowed_values("frequency", Frequency),
        allowed_values("ended_reason", EndedReason, nullable=True),
        Index(
            "uq_subscriptions_live",
            "subscriber_id",
            "topic_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
        Index("ix_subscriptions_topic_live", "topic_id", "frequency"),
        Index(
            "ix_subscriptions_carried",
            "subscriber_id",
            sqlite_where=text("carried_position"),
            postgresql_where=text("carried_position"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"))
    frequency: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_reason: Mapped[str | None] = mapped_column(String(32))
    # Articles of this topic that arrived before this instant are not this subscription's to
    # send: it began then, or (``carried_position``) a daily <-> weekly switch carried the old
    # row's position over. Digest planning does not move it; a digest subscription starts
    # at the later of this and the end of the subscriber's latest digest at its frequency
    # (their ``DigestDelivery`` rows), except while ``carried_position``, when this instant
    # alone counts until the subscription's first digest run clears the flag.
    delivered_until: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    carried_position: Mapped[bool] = mapped_column(default=False, server_default=false())

    subscriber: Mapped[Subscriber] = relationship(back_populates="subscriptions")
    topic: Mapped[Topic] = relationship(lazy="joined")


class SignupRequest(db.Model):
    """What someone asked for on the signup form, waiting for them to confirm by email.

    Nothing is subscribed until the emailed link is confirmed; the request remembers exactly
    what to subscribe to, so the confirm page can show it and confirming twice is harmless.
    """

    __tablename__ = "signup_requests"
    __table_args__ = (allowed_values("frequency", Frequency),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    topic_ids: Mapped[list[int]] = mapped_column(JSON)
    frequency: Mapped[str] = mapped_column(String(16))
    timezone: Mapped[str] = mapped_column(String(64))
    daily_hour: Mapped[int] = mapped_column(SmallInteger)
    weekly_day: Mapped[int] = mapped_column(SmallInteger)
    weekly_hour: Mapped[int] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    subscriber: Mapped[Subscriber] = relationship()
