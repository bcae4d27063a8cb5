from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from alertsvc.extensions import db
from alertsvc.models.types import UTCDateTime, utcnow


class Topic(db.Model):
    """Something readers can follow: an editorial section such as "Digital government"."""

    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # A keyword topic is a saved query (e.g. ``NHS``, ``"artificial intelligence"``,
    # ``cyber OR ransomware``): new articles whose title or summary match join it.
    query: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A retired topic takes no new subscribers and no new articles; who followed it and
    # what it sent stay on record.
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<Topic {self.slug}>"
