from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from alertsvc.extensions import db
from alertsvc.models.subscriber import Frequency
from alertsvc.models.types import UTCDateTime, allowed_values, utcnow


class RunStatus(enum.StrEnum):
    PLANNING = "planning"
    PLANNED = "planned"


class DigestRun(db.Model):
    """One hourly run of a digest frequency, identified by (frequency, window end).

    The row and its slots are written before any email is queued. A run serves the
    subscribers whose chosen local hour (and weekday, for weekly) falls in the hour ending
    at ``window_end``; each of them gets the articles of their topics that arrived since
    their previous digest (``Subscription.delivered_until``) and before ``window_end``.
    ``window_start`` is the earliest such start among the run's subscribers.
    """

    __tablename__ = "digest_runs"
    __table_args__ = (
        UniqueConstraint("frequency", "window_end"),
        allowed_values("frequency", (Frequency.DAILY, Frequency.WEEKLY)),
        allowed_values("status", RunStatus),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    frequency: Mapped[str] = mapped_column(String(16))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.PLANNING)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    planned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    subscriber_count: Mapped[int] = mapped_column(Integer, default=0)
    email_count: Mapped[int] = mapped_column(Integer, default=0)
    trigger: Mapped[str] = mapped_column(String(32), default="scheduler")
    # Failed attempts to plan it (``alertsvc.retries``): the sweeper tries a run still
    # planning again from ``next_attempt_at``, and leaves it to an operator once parked.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    parked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DigestRunSlot(db.Model):
    """A (timezone, hour[, weekday]) whose subscribers a run serves, fixed when it starts."""

    __tablename__ = "digest_run_slots"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("digest_runs.id", ondelete="CASCADE"), primary_key=True
    )
    timezone: Mapped[str] = mapped_column(String(64), primary_key=True)
    hour: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    weekday: Mapped[int] = mapped_column(SmallInteger, primary_key=True)  # -1 for daily


class EmailBody(db.Model):
    """A rendered email body shared by many outbox rows.

    Rendered once per distinct content (a digest's article set, an alert's article); the
    worker swaps the per-subscriber placeholders for signed links when it sends.
    """

    __tablename__ = "email_bodies"
    __table_args__ = (UniqueConstraint("content_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    content_key: Mapped[str] = mapped_column(String(80))
    subject: Mapped[str] = mapped_column(String(300))
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DigestDelivery(db.Model):
    """The ledger: a subscriber's part of a run, written with its outbox row.

    Keyed by (subscriber, frequency, window end), which is unique per (run, subscriber)
    because a run is identified by its frequency and window end: a second planner of the
    same run, or a resumed one, cannot queue anyone's digest twice. The key is also each
    subscriber's cursor: their next digest at that frequency starts where their latest row
    ends (see ``digests.planning``), so planning never rewrites subscription rows. A row
    with no ``body_id`` records a subscriber who was due but had nothing new.

    No foreign keys: a run writes one row per subscriber, and a foreign-key check per row
    would cost more than the row. Rows are only written by the planner, from subscribers,
    runs and bodies it has just read; erasure anonymises a subscriber in place, and the
    retention purge (``alertsvc.retention``) deletes old runs and bodies but keeps each
    subscriber's latest row per frequency, so a kept row may name a run that is gone.
    """

    __tablename__ = "digest_deliveries"

    subscriber_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    frequency: Mapped[str] = mapped_column(String(16), primary_key=True)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    run_id: Mapped[int] = mapped_column(Integer)
    body_id: Mapped[int | None] = mapped_column(Integer)
    article_count: Mapped[int] = mapped_column(Integer)


class AlertDelivery(db.Model):
    """The ledger for immediate alerts: one row per subscriber, article and revision.

    ``carried_over`` rows were past the subscriber's daily cap: no alert was sent, and the
    article goes into their next daily digest instead (``digest_run_id`` once it has).

    No foreign keys, for the digest ledger's reason: an article can have hundreds of
    thousands of rows, written in one statement from subscribers and the article just
    read, and subscribers, articles and runs are never deleted.
    """

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "article_id", "revision"),
        Index("ix_alert_deliveries_subscriber_created", "subscriber_id", "created_at"),
        Index(
            "ix_alert_deliveries_held_back",
            "subscriber_id",
            sqlite_where=text("carried_over AND digest_run_id IS NULL"),
            postgresql_where=text("carried_over AND digest_run_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(Integer)
    article_id: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    carried_over: Mapped[bool] = mapped_column(default=False)
    digest_run_id: Mapped[int | None] = mapped_column(Integer)
