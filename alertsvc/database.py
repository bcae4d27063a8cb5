"""The one commit boundary: routes, CLI commands and scheduler jobs own the transaction."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Table
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


def bulk_insert(table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Insert many rows in the current transaction, as fast as the database allows.

    PostgreSQL: ``COPY … FROM STDIN`` through psycopg. Elsewhere: one multi-row
    ``executemany``. JSON columns take Python dicts and lists. Returns the rows written.
    """
    session = db.session
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        written = 0
        names = ", ".join(f'"{name}"' for name in columns)
        with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:  # type: ignore[arg-type]
            for row in rows:
                copy.write_row([json.dumps(v) if isinstance(v, dict | list) else v for v in row])
                written += 1
        return written
    batch = [dict(zip(columns, row, strict=True)) for row in rows]
    if batch:
        connection.execute(table.insert(), batch)
    return len(batch)
