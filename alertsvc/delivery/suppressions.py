"""The suppression list: addresses never sent to, each with why and who said so.

Plain functions over the session; the caller owns the transaction. Addresses are given in
the normalised form (``alertsvc.addresses.normalise_email``) that subscribers and outbox
rows carry, so a claim compares them directly. An erased subscriber's suppression is kept
as a hash of the address (``alertsvc.addresses.address_hash``): asking about, or removing,
an address finds that row too.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import delete, func, select

from alertsvc.addresses import ADDRESS_HASH_PREFIX, address_hash
from alertsvc.database import insert_skipping_existing
from alertsvc.extensions import db
from alertsvc.models import Suppression, SuppressionReason

DEFAULT_LIST_LIMIT = 100


class SuppressionSource(enum.StrEnum):
    """Who suppressed an address (``suppressions.source``)."""

    SES = "ses"  # a bounce or complaint notification from SES through SNS
    OPERATOR = "operator"  # ``alertsvc suppressions add``


def suppress_all(
    details: Mapping[str, str | None],
    reason: SuppressionReason,
    source: SuppressionSource,
    now: datetime,
) -> int:
    """Suppress each address of ``details`` (address -> detail); how many were new.

    One insert-or-skip statement: an address already suppressed keeps its first reason,
    source and time (the first thing that stopped mail to it is the answer to "why"), and
    two requests suppressing the same address at once cannot fail each other.
    """
    if not details:
        return 0
    statement = insert_skipping_existing(Suppression, ["email"]).values(
        [
            {
                "email": email,
                "reason": reason,
                "source": source,
                "detail": detail,
                "created_at": now,
            }
            for email, detail in details.items()
        ]
    )
    # RETURNING, not rowcount: psycopg reports no rowcount for an insert that skips.
    return len(db.session.execute(statement.returning(Suppression.email)).all())


def suppress(
    email: str,
    reason: SuppressionReason,
    source: SuppressionSource,
    detail: str | None,
    now: datetime,
) -> bool:
    """Suppress ``email``; False if it already was (its first reason is kept)."""
    return suppress_all({email: detail}, reason, source, now) == 1


def is_hashed(email: str) -> bool:
    """Whether a suppression row's ``email`` is an erased subscriber's address, hashed."""
    return email.startswith(ADDRESS_HASH_PREFIX)


def _forms(email: str) -> list[str]:
    """The values a suppression of ``email`` may be stored as: itself, and its hash."""
    return [email] if is_hashed(email) else [email, address_hash(email)]


def unsuppress(email: str) -> bool:
    """Take ``email`` off the list so it may be mailed again (kept as itself or as its
    hash); False if it was not on it."""
    result = db.session.execute(
        delete(Suppression)
        .where(Suppression.email.in_(_forms(email)))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount > 0


def suppression_of(email: str) -> Suppression | None:
    """Why ``email`` is suppressed (the row that holds it, else the one of its hash), or
    None if it is not."""
    found = {
        row.email: row
        for row in db.session.scalars(
            select(Suppression).where(Suppression.email.in_(_forms(email)))
        )
    }
    return next((found[form] for form in _forms(email) if form in found), None)


def list_suppressions(
    reason: SuppressionReason | None = None, limit: int = DEFAULT_LIST_LIMIT
) -> list[Suppression]:
    """The most recently suppressed addresses first, of one reason or all."""
    statement = select(Suppression).order_by(Suppression.created_at.desc(), Suppression.id.desc())
    if reason is not None:
        statement = statement.where(Suppression.reason == reason)
    return list(db.session.scalars(statement.limit(limit)))


def count_suppressions(reason: SuppressionReason | None = None) -> int:
    """How many addresses are suppressed, of one reason or all."""
    statement = select(func.count()).select_from(Suppression)
    if reason is not None:
        statement = statement.where(Suppression.reason == reason)
    return db.session.scalar(statement) or 0
