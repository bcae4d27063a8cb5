"""Pauses of sending: who stopped which mail, why, and since when.

A pause is a row in ``sending_pauses``, in force until it is resumed; the rows stay as
history. Workers read the pauses in force in every claim's transaction, so a pause
recorded by one worker (SES refused to send, the reputation guard tripped) or by an
operator stops every worker at its next claim. Nothing resumes a pause by itself: an
operator decides (``alertsvc sending resume``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from alertsvc.audit import current_actor
from alertsvc.database import insert_skipping_existing
from alertsvc.extensions import db
from alertsvc.models import PauseScope, SendingPause

SCOPE_WORDS = {
    PauseScope.ALL: "all sending",
    PauseScope.SUBSCRIPTIONS: "subscription emails (digests and alerts)",
}


# The width of sending_pauses.paused_by and resumed_by.
ACTOR_MAX_LENGTH = 64


def pause_actor() -> str:
    """Who pauses or resumes by hand, named as in the audit log (``operator:ann@example.org``,
    ``cli:root``). A name too long for the column keeps its start, with an ellipsis: the
    audit entry written with the change has it whole."""
    name = current_actor()[0].name
    return name if len(name) <= ACTOR_MAX_LENGTH else name[: ACTOR_MAX_LENGTH - 1] + "…"


def pause(scope: PauseScope, reason: str, paused_by: str, now: datetime) -> bool:
    """Pause ``scope`` unless a pause of it is already in force; True if this one was
    recorded.

    Insert-or-skip on the partial unique index (one pause in force per scope), so workers
    that hit the same condition at once record it once and none of them fails.
    """
    table = SendingPause.__table__
    statement = (
        insert_skipping_existing(SendingPause, ["scope"], where=table.c.resumed_at.is_(None))
        .values(scope=scope.value, reason=reason, paused_by=paused_by, paused_at=now)
        .returning(table.c.id)
    )
    return db.session.execute(statement).first() is not None


def resume(scope: PauseScope | None, resumed_by: str, now: datetime) -> int:
    """End the pause of ``scope`` in force, or every pause in force when ``scope`` is None;
    returns how many ended."""
    statement = (
        update(SendingPause)
        .where(SendingPause.resumed_at.is_(None))
        .values(resumed_at=now, resumed_by=resumed_by)
        .execution_options(synchronize_session=False)
    )
    if scope is not None:
        statement = statement.where(SendingPause.scope == scope.value)
    return db.session.execute(statement).rowcount


def pauses_in_force() -> list[SendingPause]:
    """The pauses in force, oldest first (at most one per scope)."""
    return list(
        db.session.scalars(
            select(SendingPause)
            .where(SendingPause.resumed_at.is_(None))
            .order_by(SendingPause.paused_at, SendingPause.id)
        )
    )


def paused_scopes() -> set[PauseScope]:
    """The scopes paused now: the cheap read every claim makes (a handful of rows at most)."""
    return {
        PauseScope(scope)
        for scope in db.session.scalars(
            select(SendingPause.scope).where(SendingPause.resumed_at.is_(None))
        )
    }


def describe_pause(pause: SendingPause) -> str:
    """One line for the log and ``sending status``."""
    return (
        f"{SCOPE_WORDS[PauseScope(pause.scope)]} paused since "
        f"{pause.paused_at:%Y-%m-%d %H:%M:%S} UTC by {pause.paused_by}: {pause.reason}"
    )
