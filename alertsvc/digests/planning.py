"""Planning digest runs: who gets which articles, queued exactly once.

The invariants, and how they hold:

* A run is a row keyed by (frequency, window end), written with its slots before any email
  is queued.
* The ledger (``digest_deliveries``) has one row per subscriber served by a run, keyed by
  (subscriber, frequency, window end): unique per (run, subscriber), so two planners racing
  on the same subscriber cannot both commit. A subscriber who was due but had nothing new
  gets a row too.
* The ledger is also each subscriber's cursor. Their part of a run covers, per
  subscription, ``[start, window_end)`` where ``start`` is the latest of the
  subscription's ``delivered_until`` (when it began), the end of the subscriber's latest
  ledger row at this frequency, and the end of their pause. A subscription whose position
  was carried over from another frequency (``carried_position``) starts at its own
  ``delivered_until`` instead, until its first run moves that to the window end and clears
  the flag. So windows chain without gaps or overlaps whatever the subscriber changes
  between runs (hour, timezone, frequency), and a run re-planned, resumed after a crash,
  or raced by a second planner finds nothing left to do for the subscribers already done.
* The ledger row, the outbox row and the carried positions of a subscriber are written in
  one transaction; nothing else is updated per subscriber.
* The work is set-based and memory does not grow with the audience: the database fixes
  the audience and each subscriber's profile (topics and window starts) in temporary
  tables; Python sees one row per distinct profile, renders one shared body per distinct
  content, and the database writes the ledger and outbox rows with ``INSERT … SELECT``, a
  chunk of subscribers per transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import CursorResult, and_, func, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.sql import ColumnElement

from alertsvc.database import (
    WorkingTables,
    as_json,
    execute_sql,
    insert_skipping_existing,
)
from alertsvc.delivery.wakeup import OUTBOX_CHANNEL, notify
from alertsvc.digests.contents import Digests, RunRef
from alertsvc.digests.schedule import DAILY_WEEKDAY, due_slots, floor_hour
from alertsvc.digests.timezones import subscriber_timezones
from alertsvc.extensions import db
from alertsvc.metrics import count_queued
from alertsvc.models import (
    DigestRun,
    DigestRunSlot,
    OutboxStatus,
    RunStatus,
    Subscriber,
    utcnow,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

DIGEST_FREQUENCIES = ("daily", "weekly")
# No run asked for by hand ends before this: far earlier ends overflow the calendar
# (year 1 has no hour before it) and no article or subscriber is older.
EARLIEST_WINDOW_END = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class PlanResult:
    run_id: int | None
    frequency: str
    window_end: datetime
    subscribers: int = 0
    emails: int = 0
    bodies: int = 0
    seconds: float = 0.0
    already_planned: bool = False
    dry_run: bool = False
    preview: list[tuple[str, str, int]] = field(default_factory=list)


class RunRefused(ValueError):
    """A run that may not be planned, with the reason in words for the operator."""


def check_window_end(window_end: datetime, now: datetime | None = None) -> datetime:
    """The window end of a run asked for by hand (rounded down to the hour), if allowed.

    A run ending later than now would move its subscribers' positions past articles that
    have not arrived yet, and those would never be sent to them: the latest window end
    allowed is the most recent whole hour. Every way of starting a run by hand (the CLI,
    the operator page, the API) checks here; the scheduler and the sweeper only ever plan
    hours that have ended.
    """
    end = floor_hour(window_end)
    if end < EARLIEST_WINDOW_END:
        raise RunRefused(
            f"a run cannot end before {EARLIEST_WINDOW_END:%Y-%m-%d %H:%M} UTC: "
            f"{end.year:04}-{end:%m-%d %H:%M} UTC is too early"  # %Y writes the year 1 as "1"
        )
    latest = floor_hour(now or utcnow())
    if end > latest:
        raise RunRefused(
            f"a run cannot end in the future: {end:%Y-%m-%d %H:%M} UTC is later than now "
            f"(the latest run that can be planned ends at {latest:%Y-%m-%d %H:%M} UTC)"
        )
    return end


def find_or_create_digest_run(
    frequency: str, window_end: datetime, trigger: str = "scheduler"
) -> DigestRun:
    """The run row for (frequency, window end), created if it is not there yet."""
    if frequency not in DIGEST_FREQUENCIES:
        raise ValueError(f"frequency must be daily or weekly, not {frequency!r}")
    window_end = floor_hour(window_end)
    db.session.execute(
        insert_skipping_existing(DigestRun, ["frequency", "window_end"]).values(
            frequency=frequency,
            window_start=window_end,
            window_end=window_end,
            status=RunStatus.PLANNING,
            created_at=utcnow(),
            subscriber_count=0,
            email_count=0,
            trigger=trigger,
        )
    )
    return db.session.scalars(
        select(DigestRun).where(
            DigestRun.frequency == frequency, DigestRun.window_end == window_end
        )
    ).one()


def start_digest_run(frequency: str, window_end: datetime, trigger: str = "scheduler") -> DigestRun:
    """Find or create the run and fix its slots. The caller commits before planning."""
    run = find_or_create_digest_run(frequency, window_end, trigger)
    window_end = run.window_end
    has_slots = db.session.scalar(
        select(DigestRunSlot.run_id).where(DigestRunSlot.run_id == run.id).limit(1)
    )
    if has_slots is None and run.status == RunStatus.PLANNING:
        for timezone, hour, weekday in due_slots(frequency, window_end, subscriber_timezones()):
            db.session.execute(
                insert_skipping_existing(
                    DigestRunSlot, ["run_id", "timezone", "hour", "weekday"]
                ).values(run_id=run.id, timezone=timezone, hour=hour, weekday=weekday)
            )
    return run


def _slot_join(run: RunRef) -> ColumnElement[bool]:
    """Subscribers whose hour (and weekday) is one of the run's slots."""
    hour = Subscriber.daily_hour if run.frequency == "daily" else Subscriber.weekly_hour
    weekday = DAILY_WEEKDAY if run.frequency == "daily" else Subscriber.weekly_day
    return and_(
        DigestRunSlot.run_id == run.id,
        DigestRunSlot.timezone == Subscriber.timezone,
        DigestRunSlot.hour == hour,
        DigestRunSlot.weekday == weekday,
    )


# Working tables, private to the planning connection. The audience is worked out and
# written by the database, set-based; Python only sees one row per distinct profile.
# The statements below format in fixed fragments only; every value is a bound parameter.
_WORKING_TABLES = WorkingTables(
    {
        # The subscribers whose hour it is, with the end of their latest digest at this
        # frequency.
        "digest_due": "subscriber_id INTEGER PRIMARY KEY,"
        " pause_ends_at TIMESTAMP WITH TIME ZONE, served_until TIMESTAMP WITH TIME ZONE",
        # What the chunks must update besides writing rows: subscriptions whose carried
        # position they move on ('s'), and held-back alerts they deliver ('c', with the
        # profile entry).
        "digest_refs": "kind CHAR(1) NOT NULL, ref INTEGER NOT NULL,"
        " subscriber_id INTEGER NOT NULL, entry VARCHAR(20)",
        # Numbered in subscriber order: a chunk is a range of ``n``, read through the key.
        "digest_recipients": "n INTEGER PRIMARY KEY, subscriber_id INTEGER NOT NULL,"
        " profile TEXT NOT NULL",
        "digest_profiles": "profile TEXT PRIMARY KEY, body_id INTEGER, article_count INTEGER,"
        " subject VARCHAR(300), topic_ids TEXT",
    }
)


def _later(first: str, second: str) -> str:
    """The later of two timestamps, ``first`` when ``second`` is NULL (SQLite and PostgreSQL)."""
    return f"CASE WHEN {second} > {first} THEN {second} ELSE {first} END"


class _Planner:
    """Plans one partition of a run's subscribers (``subscribers``: the first and last id)
    through a connection of its own, where its temporary tables live."""

    def __init__(
        self, connection: Connection, run: RunRef, dry_run: bool, subscribers: tuple[int, int]
    ) -> None:
        self.connection = connection
        self.postgres = connection.dialect.name == "postgresql"
        self.run = run
        self.dry_run = dry_run
        self.first, self.last = subscribers
        self.chunk_size = int(current_app.config["DIGEST_CHUNK_SIZE"])
        self.pending_refs: set[str] = set()
        self.profiles: list[str] = []
        self.total = 0  # recipients, numbered 1..total

    def execute(self, sql: str, **params: object) -> CursorResult[Any]:
        return execute_sql(self.connection, sql, **params)

    def _timestamp_text(self, column: str) -> str:
        """A timestamp as profile text: seconds since the epoch on PostgreSQL (the cheapest
        form to make a million of), the stored ISO text on SQLite. ``_moment`` reads both."""
        if self.postgres:
            return f"CAST(EXTRACT(EPOCH FROM {column}) AS VARCHAR(24))"
        return column

    def build_audience(self) -> int:
        """Fill the working tables; return how many subscribers the run still has to do."""
        _WORKING_TABLES.create(self.connection)
        if self.postgres:
            # Grouping a million subscribers' entries: sort in memory, not on disk.
            self.execute("SET LOCAL work_mem = '64MB'")
        run = self.run
        hour = "s.daily_hour" if run.frequency == "daily" else "s.weekly_hour"
        weekday = str(DAILY_WEEKDAY) if run.frequency == "daily" else "s.weekly_day"
        params = {
            "run": run.id,
            "end": run.window_end,
            "frequency": run.frequency,
            "first": self.first,
            "last": self.last,
        }
        self.execute(
            f"""
            INSERT INTO digest_due (subscriber_id, pause_ends_at, served_until)
            SELECT s.id, s.pause_ends_at,
                   (SELECT max(d.window_end) FROM digest_deliveries d
                    WHERE d.subscriber_id = s.id AND d.frequency = :frequency)
            FROM subscribers s
            JOIN digest_run_slots sl ON sl.run_id = :run AND sl.timezone = s.timezone
                 AND sl.hour = {hour} AND sl.weekday = {weekday}
            WHERE s.id BETWEEN :first AND :last AND s.confirmed_at IS NOT NULL
              AND (s.pause_ends_at IS NULL OR s.pause_ends_at <= :end)
            """,
            **params,
        )
        if self.postgres:
            self.execute("ANALYZE digest_due")
        # Each live subscription at this frequency, with where its part of the run starts.
        position = (
            "CASE WHEN sub.carried_position = :true THEN sub.delivered_until"
            f" ELSE {_later('sub.delivered_until', 'due.served_until')} END"
        )
        positioned = f"""
            SELECT subscriber_id, id, topic_id, start FROM (
                SELECT due.subscriber_id, sub.id, sub.topic_id,
                       {_later(position, "due.pause_ends_at")} AS start
                FROM digest_due due
                JOIN subscriptions sub ON sub.subscriber_id = due.subscriber_id
                WHERE sub.subscriber_id BETWEEN :first AND :last
                  AND sub.frequency = :frequency AND sub.ended_at IS NULL
                  {{only}}) positioned
            WHERE start < :end
        """
        self.execute(
            f"""
            INSERT INTO digest_refs (kind, ref, subscriber_id)
            SELECT 's', id, subscriber_id
            FROM ({positioned.format(only="AND sub.carried_position = :true")}) carried
            """,
            true=True,
            **params,
        )
        if run.frequency == "daily":
            self._find_held_back_alerts()
        aggregate = "string_agg(entry, ',')" if self.postgres else "group_concat(entry, ',')"
        # In subscriber order straight from the keys, so the database can merge, group and
        # number without sorting or hashing; held-back alerts, a handful, are added after.
        self.execute(
            f"""
            INSERT INTO digest_recipients (n, subscriber_id, profile)
            SELECT row_number() OVER (ORDER BY subscriber_id), subscriber_id, profile
            FROM (SELECT subscriber_id, {aggregate} AS profile FROM (
                      SELECT subscriber_id,
                             CAST(topic_id AS VARCHAR(12)) || '@' || {self._timestamp_text("start")}
                             AS entry
                      FROM ({positioned.format(only="")}) subscribed) entries
                  GROUP BY subscriber_id) grouped
            """,
            true=True,
            **params,
        )
        self.pending_refs = {
            kind for (kind,) in self.execute("SELECT DISTINCT kind FROM digest_refs")
        }
        if "c" in self.pending_refs:
            self._add_held_back_alerts(aggregate)
        self.execute(
            "INSERT INTO digest_profiles (profile) SELECT DISTINCT profile FROM digest_recipients"
        )
        if self.postgres:
            self.execute("ANALYZE digest_recipients")
        self.profiles = [row[0] for row in self.execute("SELECT profile FROM digest_profiles")]
        self.total = self.execute("SELECT count(*) FROM digest_recipients").scalar_one()
        return self.total

    def _find_held_back_alerts(self) -> None:
        """Note the held-back alerts the due subscribers still want ('c' refs).

        An alert held back by the daily cap is sent in the daily email only if its article
        is, when the email is planned, in a topic the subscriber still follows (a live
        subscription, at any frequency) and that is not retired. The check is made here,
        when the email is built, rather than by deleting held rows when a subscription
        ends, because a subscriber stops following a topic in many ways (the manage page,
        one-click unsubscribe, leaving all topics, a bounce or complaint, erasure, the API)
        and an operator can retire the topic: one condition at the one place that reads
        held rows covers them all, including ways added later. A held row left out stays
        unsent and is looked at again by later runs; it goes out only if the subscriber
        follows one of the article's topics again.
        """
        self.execute(
            """
            INSERT INTO digest_refs (kind, ref, subscriber_id, entry)
            SELECT 'c', ad.id, due.subscriber_id, 'c' || CAST(ad.article_id AS VARCHAR(12))
            FROM digest_due due
            JOIN alert_deliveries ad ON ad.subscriber_id = due.subscriber_id
            WHERE ad.carried_over = :true AND ad.digest_run_id IS NULL
              AND EXISTS (
                  SELECT 1 FROM article_topics art
                  JOIN subscriptions sub ON sub.topic_id = art.topic_id
                  JOIN topics t ON t.id = art.topic_id
                  WHERE art.article_id = ad.article_id
                    AND sub.subscriber_id = ad.subscriber_id AND sub.ended_at IS NULL
                    AND t.retired_at IS NULL)
            """,
            true=True,
        )

    def _add_held_back_alerts(self, aggregate: str) -> None:
        """Add held-back alerts to their subscribers' profiles, numbering newcomers last."""
        held = (
            f"SELECT subscriber_id, {aggregate} AS entries FROM digest_refs"
            " WHERE kind = 'c' GROUP BY subscriber_id"
        )
        self.execute(
            f"""
            UPDATE digest_recipients SET profile = profile || ',' || (
                SELECT held.entries FROM ({held}) held
                WHERE held.subscriber_id = digest_recipients.subscriber_id)
            WHERE subscriber_id IN (SELECT subscriber_id FROM digest_refs WHERE kind = 'c')
            """
        )
        self.execute(
            f"""
            INSERT INTO digest_recipients (n, subscriber_id, profile)
            SELECT (SELECT coalesce(max(n), 0) FROM digest_recipients)
                   + row_number() OVER (ORDER BY held.subscriber_id),
                   held.subscriber_id, held.entries
            FROM ({held}) held
            WHERE held.subscriber_id NOT IN (SELECT subscriber_id FROM digest_recipients)
            """
        )

    def set_bodies(self, bodies: dict[str, dict[str, object]]) -> None:
        """Give this partition's profiles their bodies (``Digests.bodies_by_profile``)."""
        updates = [{"p": p, **bodies[p]} for p in self.profiles if p in bodies]
        if updates:
            self.connection.execute(
                text(
                    "UPDATE digest_profiles SET body_id = :body, article_count = :count,"
                    " subject = :subject, topic_ids = :topics WHERE profile = :p"
                ),
                updates,
            )

    def write_all(self, done: Callable[[int, int], None]) -> None:
        """Write every chunk, each its own transaction; ``done(subscribers, emails)`` after
        each commit."""
        for low in range(1, self.total + 1, self.chunk_size):
            high = min(low + self.chunk_size - 1, self.total)
            try:
                emails = self.write(low, high)
                self.connection.commit()
            except BaseException:
                # At once, not when the other partitions are done: this transaction holds
                # the run row's lock, which they wait on to commit their own chunks.
                self.connection.rollback()
                raise
            done(high - low + 1, emails)

    def write(self, low: int, high: int) -> int:
        """Queue the digests of recipients ``low``..``high`` and record them in the ledger.

        Returns the emails queued. Runs inside the caller's transaction.
        """
        run = self.run
        now = utcnow()
        params = {"run": run.id, "low": low, "high": high, "now": now, "end": run.window_end}
        chosen = "r.n BETWEEN :low AND :high"
        self.execute(
            f"""
            INSERT INTO digest_deliveries (subscriber_id, frequency, window_end, run_id,
                                           body_id, article_count)
            SELECT r.subscriber_id, :frequency, :end, :run, p.body_id,
                   COALESCE(p.article_count, 0)
            FROM digest_recipients r JOIN digest_profiles p ON p.profile = r.profile
            WHERE {chosen}
            """,
            frequency=run.frequency,
            **params,
        )
        emails = self.execute(
            f"""
            INSERT INTO outbox (created_at, template, context, subscriber_id,
                                unsubscribe_topic_ids, body_id, run_id, status, attempts,
                                next_attempt_at)
            SELECT :now, 'digest', {as_json(self.connection, "'{}'")}, r.subscriber_id,
                   {as_json(self.connection, "p.topic_ids")}, p.body_id, :run,
                   :queued_status, 0, :now
            FROM digest_recipients r JOIN digest_profiles p ON p.profile = r.profile
            WHERE {chosen} AND p.body_id IS NOT NULL
            """,
            queued_status=OutboxStatus.QUEUED.value,
            **params,
        ).rowcount
        if emails:
            notify(self.connection, OUTBOX_CHANNEL)
            count_queued(self.connection, "digest", emails)
        moves = {
            # Carried positions move on to the window end; from now on the ledger leads.
            "s": "UPDATE subscriptions SET delivered_until = :end, carried_position = :false",
            # Held-back alerts are delivered by this run.
            "c": "UPDATE alert_deliveries SET digest_run_id = :run",
        }
        for kind in sorted(self.pending_refs):
            self.execute(
                f"""
                {moves[kind]}
                WHERE id IN (
                    SELECT f.ref FROM digest_refs f
                    JOIN digest_recipients r ON r.subscriber_id = f.subscriber_id
                    WHERE f.kind = :kind AND r.n BETWEEN :low AND :high)
                """,
                kind=kind,
                false=False,
                **params,
            )
        self.execute(
            "UPDATE digest_runs SET subscriber_count = subscriber_count + :subscribers,"
            " email_count = email_count + :emails WHERE id = :run",
            run=run.id,
            subscribers=high - low + 1,
            emails=emails,
        )
        return emails

    def preview(self, digests: Digests, limit: int = 20) -> tuple[int, list[tuple[str, str, int]]]:
        """For a dry run: emails that would be queued, and a sample of who gets what."""
        emails = 0
        for profile, recipients in self.execute(
            "SELECT profile, count(*) FROM digest_recipients GROUP BY profile"
        ):
            if digests.contents.get(profile) is not None:
                emails += recipients
        sample = []
        for email, profile in self.execute(
            "SELECT s.email, r.profile FROM digest_recipients r"
            " JOIN subscribers s ON s.id = r.subscriber_id ORDER BY r.n"
        ):
            content = digests.contents.get(profile)
            if content is not None:
                names = ", ".join(digests.topic_names[t] for t, _ in content.key[0])
                sample.append((email, names, content.count))
                if len(sample) >= limit:
                    break
        return emails, sample

    def teardown(self) -> None:
        _WORKING_TABLES.drop(self.connection)


def subscriber_profile(run: DigestRun, subscriber_id: int) -> str | None:
    """One subscriber's profile in ``run`` (what their digest will hold), worked out by the
    planner's own audience SQL restricted to them (a partition of one id), or None if the
    run does not serve them. For previews: it writes the working tables in the session's
    transaction, which the caller rolls back."""
    planner = _Planner(
        db.session.connection(),
        RunRef(run.id, run.frequency, run.window_end),
        dry_run=True,
        subscribers=(subscriber_id, subscriber_id),
    )
    planner.build_audience()
    return planner.profiles[0] if planner.profiles else None


def planning_connection_count(dry_run: bool = False) -> int:
    """How many connections a run is planned through: ``DIGEST_PLANNING_CONNECTIONS`` on
    PostgreSQL, one on SQLite and for a dry run (the session's own)."""
    if dry_run or db.engine.dialect.name != "postgresql":
        return 1
    return max(1, int(current_app.config["DIGEST_PLANNING_CONNECTIONS"]))


# The first key of the planners' per-run advisory lock ("dige"); the run's id is the second.
_RUN_LOCK_SPACE = 0x64696765


@contextmanager
def run_lock(connection: Connection, run_id: int) -> Iterator[None]:
    """One planner at a time on a run; the others wait for it, then find the run planned
    (or, if it died half way, carry on where it stopped).

    Without it, planners racing on one run (an operator triggering the run the scheduler is
    already planning) collide on its ledger and its shared bodies, and on PostgreSQL can
    deadlock there. A session advisory lock, so that it holds across the chunks' commits and
    the server frees it if the process dies. SQLite's single writer already serialises
    planners. The job that opened ``connection`` takes it around planning and commits the
    run's row before leaving; leaving rolls back whatever was not committed.
    """
    if connection.dialect.name != "postgresql":
        yield
        return
    keys = {"space": _RUN_LOCK_SPACE, "run": run_id}
    if not execute_sql(connection, "SELECT pg_try_advisory_lock(:space, :run)", **keys).scalar():
        log.info("digest run %s is being planned by another process; waiting for it", run_id)
        execute_sql(connection, "SELECT pg_advisory_lock(:space, :run)", **keys)
    connection.commit()
    try:
        yield
    finally:
        try:
            connection.rollback()
            execute_sql(connection, "SELECT pg_advisory_unlock(:space, :run)", **keys)
            connection.commit()
        except SQLAlchemyError:
            # A pooled connection would keep the lock; a dropped one frees it.
            log.exception("digest run %s: could not unlock; dropping the connection", run_id)
            connection.invalidate()


def _partitions(count: int) -> list[tuple[int, int]]:
    """``count`` ranges of subscriber ids, first and last, of about equal size."""
    if count == 1:
        return [(0, 2**31 - 1)]
    low, high = db.session.execute(select(func.min(Subscriber.id), func.max(Subscriber.id))).one()
    low, high = low or 0, high or 0
    step = (high - low) // count + 1
    return [(low + i * step, low + (i + 1) * step - 1) for i in range(count)]


def _each(planners: list[_Planner], work: Callable[[_Planner], T]) -> list[T]:
    """``work`` on every partition, at the same time when there are several: each has its
    own connection, and the threads mostly wait on the database."""
    if len(planners) == 1:
        return [work(planners[0])]
    with ThreadPoolExecutor(len(planners), thread_name_prefix="digest-planner") as pool:
        return list(pool.map(work, planners))


def plan_digest_run(
    run: DigestRun,
    connections: list[Connection],
    *,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> PlanResult:
    """Queue the run's digests. Safe to call again, concurrently, or after a crash.

    The job that owns the run opens ``connections`` (``planning_connection_count()`` of
    them, none of them the session's, except for a dry run: the session's one, whose
    transaction the job rolls back) and hands them over: the subscribers are split into
    as many ranges of ids, each planned through its own connection at the same time,
    chunks committed as they are written. The run's own row is updated on the first
    connection last, left for the job to commit. Each partition fixes its audience in
    working tables; each distinct profile among them all is rendered once; then each
    writes its ledger and outbox rows (and the few carried positions and held-back alerts)
    in chunks of ``DIGEST_CHUNK_SIZE`` subscribers, each chunk one transaction. A chunk
    that collides with another planner's work is rolled back and the audience worked out
    again, which then leaves out what the other did.
    ``progress(done, total)`` is called per chunk.
    """
    started = time.perf_counter()
    result = PlanResult(run.id, run.frequency, run.window_end, dry_run=dry_run)
    # Read through the planner's connection: another planner may have finished the run
    # while this one waited for the run's lock.
    status = (
        run.status
        if dry_run
        else connections[0].scalar(select(DigestRun.status).where(DigestRun.id == run.id))
    )
    if status == RunStatus.PLANNED:
        # A dry run says so too (run_id is then the planned run's), and still counts what
        # planning it again would queue: nothing, unless someone's position went back.
        result.already_planned = True
        if not dry_run:
            return result
    run = RunRef(run.id, run.frequency, run.window_end)
    run_id, window_end = run.id, run.window_end
    anyone_due = db.session.scalar(
        select(Subscriber.id)
        .join(DigestRunSlot, _slot_join(run))
        .where(Subscriber.confirmed_at.is_not(None))
        .limit(1)
    )
    if anyone_due is None and not dry_run:
        # Nobody's hour: most runs outside the popular hours. Nothing to work out.
        connections[0].execute(
            update(DigestRun)
            .where(DigestRun.id == run_id, DigestRun.status == RunStatus.PLANNING)
            .values(status=RunStatus.PLANNED, planned_at=utcnow())
        )
        result.seconds = time.perf_counter() - started
        return result
    partitions = _partitions(len(connections))
    for _attempt in range(5):
        planners = [
            _Planner(connection, run, dry_run, partition)
            for connection, partition in zip(connections, partitions, strict=True)
        ]
        digests = Digests(run)
        try:
            _plan(planners, digests, result, progress)
            break
        except IntegrityError:
            log.warning("digest run %s: another planner got there first; again", run_id)
        finally:
            if not dry_run:
                for planner in planners:
                    if planner.connection.in_transaction():
                        planner.connection.rollback()
                    planner.teardown()
                    planner.connection.commit()
    else:
        raise RuntimeError(f"digest run {run_id} kept colliding with another planner")
    if not dry_run:
        connections[0].execute(
            update(DigestRun)
            .where(DigestRun.id == run_id)
            .values(
                status=RunStatus.PLANNED,
                planned_at=utcnow(),
                window_start=min(digests.window_start, window_end),
            )
        )
    result.bodies = digests.bodies
    result.seconds = time.perf_counter() - started
    return result


def _plan(
    planners: list[_Planner],
    digests: Digests,
    result: PlanResult,
    progress: Callable[[int, int], None] | None,
) -> None:
    total = sum(_each(planners, _Planner.build_audience))
    first = planners[0]
    digests.plan(
        {profile for planner in planners for profile in planner.profiles},
        None if first.dry_run else first.connection,
    )
    if first.dry_run:
        result.subscribers = total
        result.emails, result.preview = first.preview(digests)
        return
    for planner in planners:
        planner.set_bodies(digests.bodies_by_profile)
        planner.connection.commit()  # the working tables, and the shared bodies
    if progress:
        progress(0, total)
    lock = threading.Lock()

    def done(subscribers: int, emails: int) -> None:
        with lock:
            result.subscribers += subscribers
            result.emails += emails
            if progress:
                progress(subscribers, total)

    _each(planners, lambda planner: planner.write_all(done))
