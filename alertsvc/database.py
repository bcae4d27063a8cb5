"""The one commit boundary: routes, CLI commands and scheduler jobs own the transaction."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, bindparam, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from alertsvc.extensions import db
from alertsvc.models.types import UTCDateTime

log = logging.getLogger(__name__)


@contextmanager
def transaction(*, keep_loaded: bool = False) -> Iterator[Session]:
    """Commit what the block did, or roll all of it back if it raised.

    Services add and change rows but never commit; the caller wraps a whole request, command
    or job in this, so each either happens completely or not at all.

    ``keep_loaded``: the objects the session holds keep their values after the commit
    instead of being loaded again when next read. For a page that shows what its request
    has just written: those values are the ones committed, and the session ends with the
    request. Not for long-lived sessions, which must see other processes' changes.
    """
    session = db.session
    try:
        yield session
        if keep_loaded:
            current = session()  # the request's own Session behind the scoped proxy
            expire_on_commit, current.expire_on_commit = current.expire_on_commit, False
            try:
                current.commit()
            finally:
                current.expire_on_commit = expire_on_commit
        else:
            session.commit()
    except BaseException:
        session.rollback()
        raise


def database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database could not be reached or dropped the connection
    (restarted, failed over, out of connections), rather than refused what was asked.

    Such an error says nothing about the request or the unit of work: the web answers 503
    (try again shortly) and the long-running processes wait and go on, where any other
    database error is a bug or bad data. The driver's ``OperationalError`` and
    ``InterfaceError`` cover a refused connection and a server that went away; a
    ``connection_invalidated`` error is one SQLAlchemy recognised as a disconnect; a pool
    timeout is every connection busy. SQLite reports a mistake in the SQL as an
    ``OperationalError`` too; there only a file it cannot open or a lock it cannot get
    counts.
    """
    if isinstance(error, PoolTimeoutError):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if type(error.orig).__module__ == "sqlite3":
        return any(sign in str(error.orig) for sign in SQLITE_UNAVAILABLE)
    return error.connection_invalidated or isinstance(error, (OperationalError, InterfaceError))


# What sqlite3 says when the file cannot be reached (rather than when the SQL is wrong).
SQLITE_UNAVAILABLE = ("unable to open database file", "database is locked", "disk I/O error")


def insert_skipping_existing(
    model: Any,
    conflict: Sequence[str],
    connection: Connection | None = None,
    *,
    where: ColumnElement[bool] | None = None,
) -> Insert:
    """``INSERT … ON CONFLICT (conflict) [WHERE where] DO NOTHING`` for PostgreSQL or SQLite.

    For rows that two requests or two planners may try to create at once: the loser's
    insert does nothing instead of failing its transaction. ``where`` names a partial
    unique index by its predicate (``ended_at IS NULL``).
    """
    dialect = (connection or db.session.get_bind()).dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert(model).on_conflict_do_nothing(index_elements=list(conflict), index_where=where)


def execute_sql(connection: Connection, sql: str, **params: Any) -> CursorResult[Any]:
    """Run hand-written, set-based SQL with those of ``params`` it names.

    Timestamps are bound as the models store them (aware UTC on PostgreSQL, SQLite's text
    form), so comparisons with stored values hold on either database. The SQL is formatted
    from fixed fragments only; every value is a bound parameter.
    """
    params = {name: value for name, value in params.items() if f":{name}" in sql}
    statement = text(sql).bindparams(
        *(
            bindparam(name, type_=UTCDateTime())
            for name, value in params.items()
            if isinstance(value, datetime)
        )
    )
    return connection.execute(statement, params)


def as_json(connection: Connection, expression: str) -> str:
    """SQL for ``expression`` (JSON text) as a value for a JSON column."""
    return f"CAST({expression} AS JSON)" if connection.dialect.name == "postgresql" else expression


class WorkingTables:
    """Temporary tables for set-based work on one connection, by name -> column list.

    ``create`` drops any left on the connection by an earlier run that stopped half way,
    then creates them; ``drop`` removes them.
    """

    def __init__(self, columns: dict[str, str]) -> None:
        self.columns = columns

    def create(self, connection: Connection) -> None:
        self.drop(connection)
        for name, columns in self.columns.items():
            connection.execute(text(f"CREATE TEMPORARY TABLE {name} ({columns})"))

    def drop(self, connection: Connection) -> None:
        for name in self.columns:
            connection.execute(text(f"DROP TABLE IF EXISTS {name}"))


NO_SCHEMA = "the database has no tables yet: run `alertsvc db upgrade` first"
OLD_SCHEMA = "the database schema is older than this version: run `alertsvc db upgrade`"


def schema_problem_once_reachable(most_delay_s: float = 5.0) -> str | None:
    """``schema_problem()``, waiting while the database cannot be reached.

    A worker or scheduler started during a database outage (or before the database, when a
    machine boots) starts once it is back, as a running one waits and goes on, instead of
    exiting. Said once; tried again after 0.5 s, doubling up to ``most_delay_s``.
    """
    delay = 0.5
    said = False
    while True:
        try:
            return schema_problem()
        except Exception as error:
            if not database_unavailable(error):
                raise
            if not said:
                reason = str(getattr(error, "orig", error)).splitlines()[0]
                log.warning("database unavailable at start (%s): waiting for it", reason)
                said = True
        time.sleep(delay)
        delay = min(delay * 2, most_delay_s)


def schema_problem() -> str | None:
    """Why the database cannot serve this version of the code, or None if it can.

    Long-running processes (scheduler, worker) check once at start: otherwise every job
    or batch would fail on a missing table, each with its own traceback.
    """
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from flask import current_app

    script = ScriptDirectory(current_app.extensions["migrate"].directory)
    with db.engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if not current:
        return NO_SCHEMA
    if current != set(script.get_heads()):
        return OLD_SCHEMA
    return None
