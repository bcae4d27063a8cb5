"""Waking idle processes at once: PostgreSQL ``NOTIFY`` when mail is queued or articles
arrive, ``LISTEN`` in the workers and the scheduler.

``notify_*`` run in the caller's transaction, so PostgreSQL delivers the notification when
(and only if) it commits: a woken worker always finds the rows that woke it. Identical
notifications in one transaction are folded into one by PostgreSQL; we also send just one
per transaction. On SQLite there is no ``NOTIFY``; these do nothing and the processes poll.

Polling stays as the fallback everywhere: a notification sent while a listener was
reconnecting is lost, so each listener also rings once whenever it (re)connects, and the
worker still polls every ``WORKER_POLL_SECONDS``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType

import psycopg
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session, scoped_session

log = logging.getLogger(__name__)

# The channels, in one place.
OUTBOX_CHANNEL = "alertsvc_outbox"  # mail was queued: idle workers claim at once
ARTICLES_CHANNEL = "alertsvc_articles"  # articles arrived: the scheduler runs immediate alerts

_NOTIFIED_IN = "alertsvc_notified_in"  # Session.info: channel -> transaction it was sent in

# How long a listener waits for a notification before looking at whether to stop.
LISTEN_SLICE_SECONDS = 1.0
# A listener that has heard nothing for this long checks its connection is still alive.
LISTEN_CHECK_SECONDS = 30.0
# Reconnecting a lost listener: first wait, doubling up to the maximum.
RECONNECT_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 10
# How often a waiting worker looks at whether it is stopping.
STOP_CHECK_SECONDS = 0.2

_NOTIFY = text("SELECT pg_notify(:channel, '')")


def notify(connection: Connection, channel: str) -> None:
    """Tell ``channel``'s listeners when ``connection``'s transaction commits (PostgreSQL)."""
    if connection.dialect.name == "postgresql":
        connection.execute(_NOTIFY, {"channel": channel})


def notify_once(session: Session | scoped_session[Session], channel: str) -> None:
    """``notify`` in ``session``'s transaction, once however often it is called in it.

    For code that adds rows one at a time (``queue_email``): the first call in a
    transaction sends, the others find it already sent.
    """
    if isinstance(session, scoped_session):
        session = session()
    if session.get_bind().dialect.name != "postgresql":
        return
    sent_in = session.info.setdefault(_NOTIFIED_IN, {})
    current = session.get_transaction()
    if current is not None and sent_in.get(channel) is current:
        return
    notify(session.connection(), channel)
    # Kept by reference: a later transaction is a new object, even at the same address.
    sent_in[channel] = session.get_transaction()


def listen_url(database_url: str) -> str | None:
    """A libpq connection string for ``database_url``, or None if it is not PostgreSQL."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class Listener:
    """``LISTEN channel`` on a connection of its own, in a thread; calls ``on_notify`` for
    each notification, and once on every (re)connection, since anything sent while it was
    not listening was lost.

    A lost connection is logged and opened again after a growing wait (bounded by
    ``RECONNECT_MAX_SECONDS``); meanwhile the process falls back to polling.
    """

    def __init__(
        self, conninfo: str, channel: str, on_notify: Callable[[], None], *, name: str
    ) -> None:
        self.conninfo = conninfo
        self.channel = channel
        self.on_notify = on_notify
        self.name = name
        self.closing = threading.Event()
        self.listening = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.closing.set()
        self.thread.join(timeout=LISTEN_SLICE_SECONDS + CONNECT_TIMEOUT_SECONDS)

    def _run(self) -> None:
        delay = RECONNECT_SECONDS
        while not self.closing.is_set():
            try:
                with psycopg.connect(
                    self.conninfo,
                    autocommit=True,
                    connect_timeout=CONNECT_TIMEOUT_SECONDS,
                    application_name=self.name,
                ) as connection:
                    connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    log.info("listening for %s", self.channel)
                    self.listening.set()
                    delay = RECONNECT_SECONDS
                    self._ring()
                    self._listen(connection)
            except psycopg.Error as error:
                self.listening.clear()
                if self.closing.is_set():
                    break
                log.warning(
                    "lost the connection listening for %s (%s); polling meanwhile, "
                    "reconnecting in %.1f s",
                    self.channel,
                    str(error).strip(),
                    delay,
                )
            except Exception:
                self.listening.clear()
                log.exception("listening for %s failed; polling meanwhile", self.channel)
            self.closing.wait(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)
        self.listening.clear()

    def _ring(self) -> None:
        try:
            self.on_notify()
        except Exception:
            log.exception("acting on a notification on %s failed", self.channel)

    def _listen(self, connection: psycopg.Connection) -> None:
        heard_at = time.monotonic()
        while not self.closing.is_set():
            for _ in connection.notifies(timeout=LISTEN_SLICE_SECONDS):
                heard_at = time.monotonic()
                self._ring()
            if time.monotonic() - heard_at > LISTEN_CHECK_SECONDS:
                # A connection dropped without a word (a firewall, a failover) looks idle.
                connection.execute("SELECT 1")
                heard_at = time.monotonic()


class Wakeup:
    """How an idle worker waits for work: until mail is queued (a notification on
    PostgreSQL), the poll interval has passed, or the worker is stopping.

    A notification that arrives while the worker is busy is kept (``bell``) and ends its
    next wait at once, so nothing queued between a claim and the wait is left to the poll.
    """

    def __init__(self, database_url: str, channel: str, stop: threading.Event) -> None:
        self.stop = stop
        self.bell = threading.Event()
        self.idle = False
        conninfo = listen_url(database_url)
        self.listener = (
            Listener(conninfo, channel, self.bell.set, name="alertsvc-worker-listen")
            if conninfo
            else None
        )

    def __enter__(self) -> Wakeup:
        if self.listener:
            self.listener.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.listener:
            self.listener.close()

    def busy(self) -> None:
        """The worker found work: say so again when it next runs out."""
        self.idle = False

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True if woken by a notification.

        Says it is idle once each time it runs out of work (not at every poll).

        Looks at ``stop`` every ``STOP_CHECK_SECONDS``: a signal handler sets it from the
        main thread, which may be the one waiting here.
        """
        if not self.idle:
            self.idle = True
            log.info(
                "nothing due: waiting for new mail (%s), at most %g s",
                "notified" if self.listener else "polling",
                seconds,
            )
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self.bell.wait(min(remaining, STOP_CHECK_SECONDS)):
                self.bell.clear()
                return True
        return False
