"""Bearer tokens for the JSON API: the ``api_tokens`` table and the services on it.

Only a SHA-256 hash of each token is stored. The model lives here, with the only code that
uses it; ``alertsvc.api`` imports this module, so the table is in ``db.metadata`` whenever
the app exists (Alembic's autogenerate and ``tests/test_migrations.py`` compare against it).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from flask import Request
from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, mapped_column

from alertsvc.extensions import db
from alertsvc.models import UTCDateTime, utcnow

# A fixed prefix lets secret scanners (and people) recognise a leaked token.
TOKEN_PREFIX = "alertsvc_"  # noqa: S105
NAME_MAX = 100
SCOPES = ("articles:write", "runs:write", "read", "subscribers:admin")


class ApiToken(db.Model):
    """A bearer token for the JSON API. Only a SHA-256 hash of the token is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Space-separated scopes (``SCOPES``). Tokens made before scopes existed could only
    # send articles, and keep exactly that.
    scopes: Mapped[str] = mapped_column(
        String(200), default="articles:write", server_default="articles:write"
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TokenError(ValueError):
    """A token could not be created or revoked as asked."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes asked for, each known, repeats dropped, in ``SCOPES`` order."""
    asked = {scope.strip() for scope in scopes if scope.strip()}
    unknown = sorted(asked - set(SCOPES))
    if unknown:
        raise TokenError(
            f"unknown scope {', '.join(map(repr, unknown))}; choose from {', '.join(SCOPES)}"
        )
    if not asked:
        raise TokenError(f"a token needs at least one scope: {', '.join(SCOPES)}")
    return [scope for scope in SCOPES if scope in asked]


def token_scopes(row: ApiToken) -> frozenset[str]:
    return frozenset(row.scopes.split())


def create_api_token(
    name: str, scopes: Iterable[str] = ("articles:write",)
) -> tuple[ApiToken, str]:
    """A new token named ``name`` with ``scopes``; returns the row and the token, which is
    never stored."""
    name = " ".join(name.split())
    if not name or len(name) > NAME_MAX:
        raise TokenError(f"the token name must be 1 to {NAME_MAX} characters")
    chosen = check_scopes(scopes)
    revoked_at = db.session.execute(
        select(ApiToken.revoked_at).where(ApiToken.name == name)
    ).first()
    if revoked_at is not None:
        # Names stay taken after revoking: the audit log and request logs name tokens.
        still = "" if revoked_at[0] is None else " (revoked, kept so the audit log reads true)"
        raise TokenError(f"a token named {name!r} already exists{still}: choose another name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name, token_hash=hash_token(token), scopes=" ".join(chosen))
    db.session.add(row)
    return row, token


def revoke_api_token(name: str) -> None:
    row = db.session.scalar(
        select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
    )
    if row is None:
        raise TokenError(f"no live token named {name!r}")
    row.revoked_at = utcnow()


def bearer_token(request: Request) -> str | None:
    """The token in an ``Authorization: Bearer …`` header (RFC 6750 §2.1), if any."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def live_token(token: str | None) -> ApiToken | None:
    """The live token row for a presented token, or None.

    Looked up by hash, so the database holds nothing that would let its reader call the
    API.
    """
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    return db.session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None)
        )
    )


def record_use(row: ApiToken) -> None:
    """Stamp ``last_used_at``: at most once a minute per token, not on every call."""
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now


def list_api_tokens() -> list[ApiToken]:
    """Every token, live ones first, each group by name."""
    return list(
        db.session.scalars(
            select(ApiToken).order_by(ApiToken.revoked_at.is_not(None), ApiToken.name)
        )
    )
