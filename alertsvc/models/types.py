"""Column types shared by the models."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite keeps no offset, PostgreSQL keeps ``timestamptz``; both come back as aware UTC so
    that comparisons never mix naive and aware values.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def allowed_values(
    column: str, values: Iterable[enum.StrEnum], *, nullable: bool = False
) -> CheckConstraint:
    """``CHECK (column IN ('a', 'b'))`` from the enum, named after the column.

    The one way the models write an allowed-values constraint, so the database refuses
    exactly what the enum does not name. The text must stay what the migrations created
    (``tests/test_migrations.py`` compares them): a new value needs a migration.
    """
    listed = ", ".join(f"'{value.value}'" for value in values)
    condition = f"{column} IN ({listed})"
    if nullable:
        condition = f"{column} IS NULL OR {condition}"
    return CheckConstraint(condition, name=column)


_clock: Callable[[], datetime] | None = None


def utcnow() -> datetime:
    """The current time, aware UTC: the one clock every part of alertsvc reads.

    Tests that simulate days passing set the clock with ``set_clock``.
    """
    return _clock() if _clock is not None else datetime.now(UTC)


def set_clock(clock: Callable[[], datetime] | None) -> None:
    """Replace the clock (``None`` restores the system clock). For tests and simulations."""
    global _clock
    _clock = clock
