"""The one commit boundary: routes, CLI commands and scheduler jobs own the transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from alertsvc.extensions import db


@contextmanager
def transaction() -> Iterator[Session]:
    """Commit what the block did, or roll all of it back if it raised.

    Services add and change rows but never commit; the caller wraps a whole request, command
    or job in this, so each either happens completely or not at all.
    """
    session = db.session
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
