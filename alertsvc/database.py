"""The one commit boundary: routes, CLI commands and scheduler jobs own the transaction."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

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


def insert_skipping_existing(
    model: Any, conflict: Sequence[str], connection: Connection | None = None
) -> Insert:
    """``INSERT … ON CONFLICT (conflict) DO NOTHING`` for PostgreSQL or SQLite.

    For rows that two requests or two planners may try to create at once: the loser's
    insert does nothing instead of failing its transaction.
    """
    dialect = (connection or db.session.get_bind()).dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert(model).on_conflict_do_nothing(index_elements=list(conflict))
