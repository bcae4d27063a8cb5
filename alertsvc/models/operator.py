"""The people who run the service (operators) and the record of what they changed."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from alertsvc.extensions import db
from alertsvc.models.types import UTCDateTime, allowed_values, utcnow


class OperatorRole(enum.StrEnum):
    ADMIN = "admin"  # sees and changes everything
    VIEWER = "viewer"  # sees everything, changes nothing


class Operator(db.Model):
    """Someone who signs in at ``/admin``. Only an argon2 hash of the password is stored.

    ``session_version`` is part of the id kept in the signed session cookie: changing the
    password, the role or disabling the operator bumps it, which signs out every session
    they had, on every web process, with no server-side session store.
    """

    __tablename__ = "operators"
    __table_args__ = (allowed_values("role", OperatorRole),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=OperatorRole.VIEWER)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_signed_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    session_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    # Flask-Login's user protocol.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.disabled_at is None

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    @property
    def is_admin(self) -> bool:
        return self.role == OperatorRole.ADMIN

    def __repr__(self) -> str:
        return f"<Operator {self.id}>"


class AuditEntry(db.Model):
    """One change an operator made: who, when, what, from where. Append-only.

    ``actor`` is how the change was made, in words (``operator:ann@example.org``,
    ``token:newsroom``, ``cli:root``) and stays true if the operator is later removed.
    Entries about a subscriber name them by id, never by address, so erasing a subscriber
    leaves nothing here to scrub.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    operator_id: Mapped[int | None] = mapped_column(
        ForeignKey("operators.id", ondelete="SET NULL"), index=True
    )
    actor: Mapped[str] = mapped_column(String(400))
    # A dotted verb: "topic.create", "run.trigger", "subscriber.erase", …
    action: Mapped[str] = mapped_column(String(64), index=True)
    # What it was done to, in words: "topic data", "run 12", "subscriber 345".
    target: Mapped[str] = mapped_column(String(400), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The client's address for a web or API request, "cli" for a command.
    client: Mapped[str] = mapped_column(String(100), default="")
    note: Mapped[str | None] = mapped_column(Text)
