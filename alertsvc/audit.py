"""The audit log: the one place a change made by an operator is recorded.

Pages under ``/admin``, the JSON API and the CLI commands that change things call
``record_audit`` inside the transaction of the change itself, so an entry exists if and
only if the change committed. Who made it comes from the request (set by the admin
blueprint or the API's token check, ``set_actor``) or, outside a request, from the command
line's user.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Any

from flask import g, has_request_context, request
from sqlalchemy import func, select

from alertsvc.extensions import db
from alertsvc.models import AuditEntry


@dataclass(frozen=True)
class Actor:
    """Who is making changes in this request: ``name`` as recorded, the operator's id."""

    name: str
    operator_id: int | None = None


class UnknownActor(RuntimeError):
    """A change was attempted in a request that no operator or token was checked for."""


def set_actor(actor: Actor) -> None:
    """Record who is behind the current request; called once the request is authenticated."""
    g.audit_actor = actor


def _command_line_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def current_actor() -> tuple[Actor, str]:
    """Who is making the change, and from where (a client address, or ``cli``)."""
    if not has_request_context():
        return Actor(f"cli:{_command_line_user()}"), "cli"
    actor = g.get("audit_actor")
    if actor is None:
        # A route that changes things without having checked who asks is a bug: refuse
        # rather than record a change nobody can be held to.
        raise UnknownActor(f"no operator or token checked for {request.path}")
    return actor, (request.remote_addr or "")[:100]


def record_audit(action: str, target: str = "", details: dict[str, Any] | None = None) -> None:
    """Add an audit entry to the current transaction (the caller commits it with the change).

    ``target`` names what changed in words (``topic data``, ``subscriber 12``); never an
    email address of a subscriber (erasure must leave nothing behind here).
    """
    actor, client = current_actor()
    db.session.add(
        AuditEntry(
            actor=actor.name[:400],
            operator_id=actor.operator_id,
            action=action,
            target=target[:400],
            details=details or {},
            client=client,
        )
    )


def record_changes(
    action: str, target: str, before: dict[str, Any], after: dict[str, Any]
) -> dict[str, Any]:
    """Audit an edit as the fields it changed, with their new values, and return those;
    no entry when nothing changed (a form saved as it was is not a change)."""
    changed = {key: value for key, value in after.items() if value != before.get(key)}
    if changed:
        record_audit(action, target, changed)
    return changed


def audit_entries(
    *, limit: int = 50, before_id: int | None = None, action: str | None = None
) -> list[AuditEntry]:
    """The newest entries first; ``before_id`` pages back through older ones."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    if action:
        query = query.where(AuditEntry.action == action)
    return list(db.session.scalars(query))


def audit_entry_count() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEntry)) or 0
