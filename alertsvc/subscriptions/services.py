"""Signing up, confirming, managing and ending subscriptions.

Plain functions over the session; the caller (a route or a command) owns the transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import joinedload

from alertsvc.addresses import (
    InvalidAddress,
    address_hash,
    address_prefix,
    normalise_email,
    stored_forms,
)
from alertsvc.database import insert_skipping_existing
from alertsvc.delivery.outbox import queue_email
from alertsvc.extensions import db
from alertsvc.models import (
    AlertDelivery,
    DeliveryEvent,
    DigestDelivery,
    EmailBody,
    EndedReason,
    Frequency,
    OutboxEmail,
    OutboxStatus,
    SignupRequest,
    Subscriber,
    Subscription,
    Suppression,
    Topic,
    utcnow,
)
from alertsvc.tokens import InvalidToken, TokenPurpose, signed_url

ERASED_ADDRESS_SUFFIX = "@erased.invalid"
# What outbox rows of an erased subscriber are addressed to afterwards.
ERASED_ADDRESS = "erased@erased.invalid"


def find_subscriber(email: str) -> Subscriber | None:
    """The subscriber stored under a normalised address, in whichever form it was stored."""
    return db.session.scalars(
        select(Subscriber)
        .where(Subscriber.email.in_(stored_forms(email)))
        .order_by(Subscriber.id)
        .limit(1)
    ).one_or_none()


@dataclass(frozen=True)
class Schedule:
    """When digests arrive: the subscriber's own hour, weekday and timezone."""

    timezone: str
    daily_hour: int
    weekly_day: int
    weekly_hour: int


def _find_or_create_subscriber(email: str) -> Subscriber:
    """Race-free: two signups for a new address at once still make one row.

    A new address costs one statement (the INSERT returns the row); a known one two. An
    internationalised domain first looks for a row stored with the Unicode domain.
    """
    if "xn--" in email:
        existing = find_subscriber(email)
        if existing is not None:
            return existing
    created = db.session.scalars(
        select(Subscriber).from_statement(
            insert_skipping_existing(Subscriber, ["email"])
            .values(email=email, created_at=utcnow())
            .returning(Subscriber)
        )
    ).one_or_none()
    if created is not None:
        return created
    return db.session.scalars(select(Subscriber).where(Subscriber.email == email)).one()


def _live_subscriptions(subscriber_id: int) -> list[Subscription]:
    return list(
        db.session.scalars(
            select(Subscription)
            .where(Subscription.subscriber_id == subscriber_id, Subscription.ended_at.is_(None))
            .order_by(Subscription.id)
        )
    )


def _follows_all(subscriber: Subscriber, topics: list[Topic], frequency: Frequency) -> bool:
    live = {(s.topic_id, s.frequency) for s in _live_subscriptions(subscriber.id)}
    return all((t.id, frequency) in live for t in topics)


def sign_up(email: str, topics: list[Topic], frequency: Frequency, schedule: Schedule) -> None:
    """Record a signup and email a confirmation link.

    The caller shows the same reply whatever happens here, so the page never tells whether
    an address is new, waiting or subscribed. Nothing is subscribed until confirmed: an
    already subscribed reader asking for more topics confirms those too. One who asks for
    exactly what they already have is emailed a link to manage their subscription instead.
    """
    subscriber = _find_or_create_subscriber(email)
    if subscriber.confirmed_at is not None and _follows_all(subscriber, topics, frequency):
        queue_email(
            template="already_subscribed",
            to_address=subscriber.email,
            subject="You're already subscribed",
            context={"topic_names": [t.name for t in topics], "frequency": frequency.value},
            subscriber_id=subscriber.id,
        )
        return

    request = SignupRequest(
        subscriber_id=subscriber.id,
        topic_ids=[t.id for t in topics],
        frequency=frequency,
        timezone=schedule.timezone,
        daily_hour=schedule.daily_hour,
        weekly_day=schedule.weekly_day,
        weekly_hour=schedule.weekly_hour,
    )
    db.session.add(request)
    db.session.flush()
    names = [t.name for t in topics]
    queue_email(
        template="confirm",
        to_address=subscriber.email,
        subject=f"Confirm your email alerts: {', '.join(names)}",
        context={
            "confirm_url": signed_url(TokenPurpose.CONFIRM, request.id),
            "topic_names": names,
            "frequency": frequency.value,
        },
        subscriber_id=subscriber.id,
    )


def load_signup_request(payload: Any) -> SignupRequest:
    """The request a confirm token points at, or ``InvalidToken``."""
    if not isinstance(payload, int):
        raise InvalidToken("unexpected confirm token payload")
    request = db.session.get(SignupRequest, payload, options=[joinedload(SignupRequest.subscriber)])
    if request is None:
        raise InvalidToken("no such signup request")
    if request.subscriber.erased_at is not None:
        # Erasure deletes the requests too; this guards any that predate that rule.
        raise InvalidToken("subscriber erased")
    return request


def request_topics(request: SignupRequest) -> list[Topic]:
    """The topics a signup asked for that still exist and are not retired, in the order
    shown on the form (a topic retired before the link is clicked is not subscribed to)."""
    return list(
        db.session.scalars(
            select(Topic)
            .where(Topic.id.in_(request.topic_ids), Topic.retired_at.is_(None))
            .order_by(Topic.name)
        )
    )


@dataclass(frozen=True)
class ConfirmedSignupNow:
    """What is true today of the topics an already confirmed signup asked for.

    An old confirm link must not tell a reader who has since left or changed their mind
    that they are subscribed: it shows their subscriptions as they are now.
    """

    following: list[tuple[str, list[Topic]]]
    """(frequency, topics) of the requested topics still followed, by frequency."""
    stopped: list[Topic]
    """Requested topics no longer followed."""
    paused_until: date | None


def confirmed_signup_now(request: SignupRequest) -> ConfirmedSignupNow:
    subscriber = request.subscriber
    live = live_frequencies(subscriber)
    following: dict[str, list[Topic]] = {}
    stopped: list[Topic] = []
    for topic in request_topics(request):
        if topic.id in live:
            following.setdefault(live[topic.id], []).append(topic)
        else:
            stopped.append(topic)
    return ConfirmedSignupNow(
        following=[(f.value, following[f.value]) for f in Frequency if f.value in following],
        stopped=stopped,
        paused_until=current_pause(subscriber),
    )


def long_date(value: date | str) -> str:
    """A date as readers see it ("25 November 2027"); an ISO date string (from an email's
    stored context) too."""
    if isinstance(value, str):
        value = date.fromisoformat(value)
    return f"{value.day} {value:%B %Y}"


def current_pause(subscriber: Subscriber) -> date | None:
    """The date the subscriber's emails are paused until, if that is still ahead of them."""
    paused = subscriber.paused_until
    return paused if paused is not None and paused > local_today(subscriber) else None


def _digest_position(subscription: Subscription) -> datetime:
    """Where a digest subscription's next digest starts (before any pause is applied).

    The later of its own ``delivered_until`` and the end of the subscriber's latest digest
    at its frequency; while ``carried_position``, its own alone (see ``Subscription``).
    """
    if subscription.carried_position:
        return subscription.delivered_until
    served_until = db.session.scalar(
        select(func.max(DigestDelivery.window_end)).where(
            DigestDelivery.subscriber_id == subscription.subscriber_id,
            DigestDelivery.frequency == subscription.frequency,
        )
    )
    if served_until is None:
        return subscription.delivered_until
    return max(subscription.delivered_until, served_until)


def subscribe(subscriber: Subscriber, topic_id: int, frequency: Frequency) -> Subscription:
    """Make ``subscriber`` follow one topic at ``frequency`` (see ``subscribe_to_topics``)."""
    return subscribe_to_topics(subscriber, [topic_id], frequency)[0]


def subscribe_to_topics(
    subscriber: Subscriber, topic_ids: Sequence[int], frequency: Frequency
) -> list[Subscription]:
    """Make ``subscriber`` follow each of ``topic_ids`` at ``frequency``, keeping history
    append-only; the live subscriptions, in the order of ``topic_ids``.

    Two statements whatever the number of topics: the live rows are read (and locked) at
    once, and the new ones go in as one INSERT. Two requests may start the same
    subscription at once (a double-clicked manage form): the rows go in with ``ON CONFLICT
    DO NOTHING`` on the one-live-row index, and a topic whose row the other request made
    first is done again from that row, instead of failing on the unique index.
    """
    topic_ids = list(dict.fromkeys(topic_ids))
    if not topic_ids:
        return []
    current = {
        s.topic_id: s
        for s in db.session.scalars(
            select(Subscription)
            .where(
                Subscription.subscriber_id == subscriber.id,
                Subscription.topic_id.in_(topic_ids),
                Subscription.ended_at.is_(None),
            )
            # OF: the topic is eager-loaded by an outer join, which PostgreSQL cannot lock.
            .with_for_update(of=Subscription)
        )
    }
    now = utcnow()
    kept: dict[int, Subscription] = {}
    rows = []
    for topic_id in topic_ids:
        existing = current.get(topic_id)
        delivered_until = now
        carried_position = False
        if existing is not None:
            if existing.frequency == frequency:
                kept[topic_id] = existing
                continue
            existing.ended_at = now
            existing.ended_reason = EndedReason.FREQUENCY_CHANGED
            if Frequency.IMMEDIATELY not in (existing.frequency, frequency):
                # Daily <-> weekly: the new digest picks up exactly where the old one
                # stopped. To or from immediately the change counts from now: alerts went
                # out as articles arrived, and a digest's unsent articles are not turned
                # into alerts.
                delivered_until = _digest_position(existing)
                carried_position = True
        rows.append(
            {
                "subscriber_id": subscriber.id,
                "topic_id": topic_id,
                "frequency": frequency,
                "created_at": now,
                "delivered_until": delivered_until,
                "carried_position": carried_position,
            }
        )
    if rows:
        db.session.flush()
        created = db.session.scalars(
            select(Subscription).from_statement(
                insert_skipping_existing(
                    Subscription,
                    ["subscriber_id", "topic_id"],
                    where=Subscription.ended_at.is_(None),
                )
                .values(rows)
                .returning(Subscription)
            )
        ).all()
        kept.update((s.topic_id, s) for s in created)
    raced = [topic_id for topic_id in topic_ids if topic_id not in kept]
    if raced:
        kept.update(zip(raced, subscribe_to_topics(subscriber, raced, frequency), strict=True))
    return [kept[topic_id] for topic_id in topic_ids]


def confirm_signup(request: SignupRequest) -> list[Topic] | None:
    """Subscribe as the request asked. Returns the topics now followed (those still offered),
    None if the request was already confirmed, or an empty list if none of its topics is
    offered any more: then nothing is stored (the request stays unconfirmed and a new
    subscriber stays unconfirmed), since confirming would subscribe the reader to nothing.

    The request is claimed by one conditional UPDATE, so of two clicks at once exactly one
    confirms and sends the welcome email: on PostgreSQL the second waits for the first's row
    lock and then finds the request confirmed; SQLite, which has no row locks, lets one writer
    in at a time and the second's UPDATE matches nothing.
    """
    topics = request_topics(request)
    if not topics:
        return None if request.confirmed_at is not None else []
    now = utcnow()
    claimed = db.session.execute(
        update(SignupRequest)
        .where(SignupRequest.id == request.id, SignupRequest.confirmed_at.is_(None))
        .values(confirmed_at=now)
    ).rowcount
    if not claimed:
        return None
    subscriber = request.subscriber
    subscriber.confirmed_at = subscriber.confirmed_at or now
    subscriber.timezone = request.timezone
    subscriber.daily_hour = request.daily_hour
    subscriber.weekly_day = request.weekly_day
    subscriber.weekly_hour = request.weekly_hour
    subscribe_to_topics(subscriber, [t.id for t in topics], Frequency(request.frequency))
    paused_until = current_pause(subscriber)
    queue_email(
        template="subscribed",
        to_address=subscriber.email,
        subject=f"You're subscribed: {', '.join(t.name for t in topics)}",
        context={
            "topic_names": [t.name for t in topics],
            "frequency": request.frequency,
            "paused_until": paused_until.isoformat() if paused_until else None,
        },
        subscriber_id=subscriber.id,
        unsubscribe_topic_ids=[t.id for t in topics],
    )
    return topics


def load_subscriber(payload: Any) -> Subscriber:
    """The subscriber a manage token points at, or ``InvalidToken``."""
    if not isinstance(payload, int):
        raise InvalidToken("unexpected manage token payload")
    subscriber = db.session.get(Subscriber, payload)
    if subscriber is None:
        raise InvalidToken("no such subscriber")
    if subscriber.erased_at is not None:
        # Links in old emails no longer stand for anyone once their data is deleted.
        raise InvalidToken("subscriber erased")
    return subscriber


def live_frequencies(subscriber: Subscriber) -> dict[int, str]:
    """Topic id -> frequency of each live subscription."""
    return {s.topic_id: s.frequency for s in _live_subscriptions(subscriber.id)}


def end_subscriptions(
    subscriber_id: int, topic_ids: Iterable[int] | None, reason: EndedReason
) -> int:
    """End the live subscriptions to ``topic_ids`` (all when ``None``). Returns how many."""
    statement = (
        update(Subscription)
        .where(Subscription.subscriber_id == subscriber_id, Subscription.ended_at.is_(None))
        .values(ended_at=utcnow(), ended_reason=reason)
        .execution_options(synchronize_session=False)
    )
    if topic_ids is not None:
        statement = statement.where(Subscription.topic_id.in_(list(topic_ids)))
    return db.session.execute(statement).rowcount


def end_subscriptions_of_addresses(
    emails: Iterable[str], reason: EndedReason, now: datetime
) -> int:
    """End every live subscription of the subscribers at ``emails`` (normalised). How many.

    One statement for any number of addresses: SES reports bounces and complaints by the
    thousand during an incident.
    """
    forms = sorted({form for email in emails for form in stored_forms(email)})
    if not forms:
        return 0
    return db.session.execute(
        update(Subscription)
        .where(
            Subscription.ended_at.is_(None),
            Subscription.subscriber_id.in_(
                select(Subscriber.id).where(Subscriber.email.in_(forms))
            ),
        )
        .values(ended_at=now, ended_reason=reason)
        .execution_options(synchronize_session=False)
    ).rowcount


def end_subscriptions_of_address(email: str, reason: EndedReason, now: datetime) -> int:
    """End every live subscription of the subscriber at ``email`` (normalised). How many."""
    return end_subscriptions_of_addresses([email], reason, now)


def update_subscriptions(
    subscriber: Subscriber, wanted: Mapping[int, Frequency | None], schedule: Schedule
) -> None:
    """Apply the manage form: each topic at a frequency, or ``None`` to stop following it.

    A subscriber holding a valid manage link has proved they own the address, so topics
    added here take effect at once.
    """
    current = live_frequencies(subscriber)
    dropped = [topic_id for topic_id, frequency in wanted.items() if frequency is None]
    end_subscriptions(subscriber.id, [t for t in dropped if t in current], EndedReason.UNSUBSCRIBED)
    for frequency in Frequency:
        starting = [t for t, f in wanted.items() if f == frequency and current.get(t) != f]
        if starting:
            subscribe_to_topics(subscriber, starting, frequency)
    subscriber.timezone = schedule.timezone
    subscriber.daily_hour = schedule.daily_hour
    subscriber.weekly_day = schedule.weekly_day
    subscriber.weekly_hour = schedule.weekly_hour
    if subscriber.confirmed_at is None and any(f is not None for f in wanted.values()):
        subscriber.confirmed_at = utcnow()


def local_today(subscriber: Subscriber) -> date:
    """Today's date where the subscriber lives: pauses are dates in their timezone.

    Read from ``utcnow()``, the one clock, so a simulated day is the same day here.
    """
    return utcnow().astimezone(ZoneInfo(subscriber.timezone)).date()


class InvalidPause(ValueError):
    """A pause date a reader cannot choose; the message says why, in the service's words."""


def latest_pause_date(today: date) -> date:
    """A pause lasts at most a year: until the same date next year (28 February for 29)."""
    try:
        return today.replace(year=today.year + 1)
    except ValueError:
        return today.replace(year=today.year + 1, day=28)


def check_pause_date(subscriber: Subscriber, until: date) -> None:
    """Raise ``InvalidPause`` unless a reader may pause until ``until``: after today where
    they live and at most a year ahead (a pause to 9999-12-31 would be an unsubscribe that
    still looks like a subscription)."""
    today = local_today(subscriber)
    if until <= today:
        raise InvalidPause("The date must be in the future")
    latest = latest_pause_date(today)
    if until > latest:
        raise InvalidPause(
            f"You can pause emails for up to a year: enter a date no later than {latest:%-d %B %Y}"
        )


def pause_subscriber(subscriber: Subscriber, until: date | None) -> None:
    """Hold all email until the start of ``until`` in their timezone; ``None`` resumes now.

    Nothing that arrived before the pause ends is sent afterwards: digests after the pause
    start from ``pause_ends_at``. The manage page checks ``until`` with ``check_pause_date``.
    """
    now = utcnow()
    subscriber.paused_until = until
    if until is not None:
        subscriber.pause_ends_at = datetime(
            until.year, until.month, until.day, tzinfo=ZoneInfo(subscriber.timezone)
        ).astimezone(UTC)
    elif subscriber.pause_ends_at is not None and subscriber.pause_ends_at > now:
        subscriber.pause_ends_at = now


@dataclass(frozen=True)
class Unsubscribed:
    """What a one-click unsubscribe did: the topics it ended and those still followed."""

    subscriber_id: int
    ended: list[str]
    remaining: list[str]


def _read_unsubscribe_payload(payload: Any) -> tuple[Subscriber, list[int] | None]:
    """The subscriber and topic ids (``None``: all) of a signed unsubscribe payload.

    The one check of its shape, for the page that shows the button and the POST that acts:
    a payload this service never makes is ``InvalidToken``, never a server error.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("s"), int):
        raise InvalidToken("unexpected unsubscribe token payload")
    topic_ids = payload.get("t")
    if topic_ids is not None and not (
        isinstance(topic_ids, list) and all(isinstance(t, int) for t in topic_ids)
    ):
        raise InvalidToken("unexpected unsubscribe token payload")
    return load_subscriber(payload["s"]), topic_ids


def unsubscribe(payload: Any) -> Unsubscribed:
    """Act on a one-click unsubscribe token.

    RFC 8058: the link ends the subscriptions the email was about, at once. Ending them
    again is harmless and ends nothing.
    """
    subscriber, topic_ids = _read_unsubscribe_payload(payload)
    live = _live_subscriptions(subscriber.id)
    ending = [s for s in live if topic_ids is None or s.topic_id in topic_ids]
    end_subscriptions(subscriber.id, [s.topic_id for s in ending], EndedReason.UNSUBSCRIBED)
    return Unsubscribed(
        subscriber_id=subscriber.id,
        ended=sorted(s.topic.name for s in ending),
        remaining=sorted(s.topic.name for s in live if s not in ending),
    )


def unsubscribe_topics_of(payload: Any) -> tuple[Subscriber, list[Topic]]:
    """Who an unsubscribe token is for and which of its topics they still follow."""
    subscriber, topic_ids = _read_unsubscribe_payload(payload)
    topics = [
        s.topic
        for s in _live_subscriptions(subscriber.id)
        if topic_ids is None or s.topic_id in topic_ids
    ]
    return subscriber, sorted(topics, key=lambda t: t.name)


def send_manage_link(email: str) -> None:
    """Email a fresh manage link if the address is a confirmed subscriber's.

    Nothing goes to an unknown address, nor to one that signed up but never confirmed: that
    one gets its confirmation by signing up again. The caller replies the same anyway.
    """
    subscriber = find_subscriber(email)
    if subscriber is None or subscriber.confirmed_at is None:
        return
    queue_email(
        template="manage_link",
        to_address=subscriber.email,
        subject="Manage your email alerts",
        context={},
        subscriber_id=subscriber.id,
    )


def search_subscribers(query: str, limit: int = 50) -> list[Subscriber]:
    """Subscribers whose address is ``query`` or starts with it (any case, the domain in
    Unicode or ASCII), exact matches first, at most ``limit``. The prefix is matched
    literally: ``%`` and ``_`` are not wildcards."""
    prefix = address_prefix(query)
    if not prefix.typed:
        return []
    exact: list[str] = [prefix.typed]
    with contextlib.suppress(InvalidAddress):
        exact = stored_forms(normalise_email(prefix.typed))
    starts = [func.lower(Subscriber.email).startswith(p, autoescape=True) for p in prefix.stored]
    candidates = db.session.scalars(
        select(Subscriber)
        .where(or_(Subscriber.email.in_(exact), *starts))
        .order_by(Subscriber.email.not_in(exact), Subscriber.email)
        .limit(prefix.rows_to_fetch(limit))
    )
    found = [s for s in candidates if s.email in exact or prefix.matches(s.email)]
    return found[:limit]


def subscriber_status(subscriber: Subscriber) -> str:
    if subscriber.erased_at is not None:
        return "erased"
    return "confirmed" if subscriber.confirmed_at is not None else "pending"


def _address_forms(address: str) -> list[str]:
    """Every form an address may be stored in elsewhere (outbox rows, delivery events,
    suppressions): as stored, lower case, normalised, with a Unicode domain."""
    forms = {address, address.lower()}
    with contextlib.suppress(InvalidAddress):
        forms.update(stored_forms(normalise_email(address)))
    return sorted(forms)


def subscriber_suppression(subscriber: Subscriber) -> Suppression | None:
    """The suppression of the subscriber's address, if any (by address, or by its hash)."""
    forms = _address_forms(subscriber.email)
    with contextlib.suppress(InvalidAddress):
        forms.append(address_hash(normalise_email(subscriber.email)))
    return db.session.scalars(
        select(Suppression).where(Suppression.email.in_(forms)).order_by(Suppression.id).limit(1)
    ).one_or_none()


def subscriber_emails(
    subscriber: Subscriber, *, limit: int | None = None, newest_first: bool = False
) -> list[dict[str, Any]]:
    """The emails queued for a subscriber, each with its status and what SES reported
    about it (delivery events): two queries, whatever the number of emails."""
    statement = (
        select(
            OutboxEmail.id,
            OutboxEmail.template,
            func.coalesce(OutboxEmail.subject, EmailBody.subject),
            OutboxEmail.to_address,
            OutboxEmail.status,
            OutboxEmail.attempts,
            OutboxEmail.created_at,
            OutboxEmail.sent_at,
            OutboxEmail.delivered_at,
            OutboxEmail.last_error,
            OutboxEmail.run_id,
            OutboxEmail.article_id,
        )
        .outerjoin(EmailBody, EmailBody.id == OutboxEmail.body_id)
        .where(OutboxEmail.subscriber_id == subscriber.id)
        .order_by(OutboxEmail.id.desc() if newest_first else OutboxEmail.id)
    )
    if limit is not None:
        statement = statement.limit(limit)
    emails = [
        {
            "id": row_id,
            "template": template,
            "subject": subject,
            "to_address": to_address,
            "status": status,
            "attempts": attempts,
            "created_at": created_at,
            "sent_at": sent_at,
            "delivered_at": delivered_at,
            "last_error": last_error,
            "run_id": run_id,
            "article_id": article_id,
            "events": [],
        }
        for (
            row_id,
            template,
            subject,
            to_address,
            status,
            attempts,
            created_at,
            sent_at,
            delivered_at,
            last_error,
            run_id,
            article_id,
        ) in db.session.execute(statement)
    ]
    by_id = {email["id"]: email for email in emails}
    if by_id:
        for event in db.session.scalars(
            select(DeliveryEvent)
            .where(DeliveryEvent.outbox_id.in_(list(by_id)))
            .order_by(DeliveryEvent.occurred_at, DeliveryEvent.id)
        ):
            by_id[event.outbox_id]["events"].append(
                {
                    "kind": event.kind,
                    "email": event.email,
                    "occurred_at": event.occurred_at,
                    "detail": event.detail,
                }
            )
    return emails


def signup_requests_of(subscriber: Subscriber) -> list[SignupRequest]:
    return list(
        db.session.scalars(
            select(SignupRequest)
            .where(SignupRequest.subscriber_id == subscriber.id)
            .order_by(SignupRequest.id)
        )
    )


def subscription_history(subscriber: Subscriber) -> list[Subscription]:
    """Every subscription row of the subscriber, ended ones too, oldest first."""
    return list(
        db.session.scalars(
            select(Subscription)
            .where(Subscription.subscriber_id == subscriber.id)
            .order_by(Subscription.id)
        )
    )


def _stamp(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def _stamped(record: dict[str, Any]) -> dict[str, Any]:
    return {
        key: [_stamped(item) for item in value] if isinstance(value, list) else _stamp(value)
        for key, value in record.items()
    }


def export_subscriber(subscriber: Subscriber) -> dict[str, Any]:
    """Everything stored about a subscriber, for "download my data" and the operators'
    export: the subscriber row, every subscription with its history, signup requests,
    the emails queued for them with status and delivery events, and any suppression of
    their address; what SES reported about their address that is tied to none of those
    emails (its email row purged by retention, or a message SES named that we never
    recorded); and the ledgers: each digest they were due (sent or with nothing new) and
    each immediate alert (sent, or carried over to a digest past the daily cap)."""
    suppression = subscriber_suppression(subscriber)
    return {
        "id": subscriber.id,
        "email": subscriber.email,
        "status": subscriber_status(subscriber),
        "created_at": _stamp(subscriber.created_at),
        "confirmed_at": _stamp(subscriber.confirmed_at),
        "erased_at": _stamp(subscriber.erased_at),
        "timezone": subscriber.timezone,
        "daily_hour": subscriber.daily_hour,
        "weekly_day": subscriber.weekly_day,
        "weekly_hour": subscriber.weekly_hour,
        "paused_until": _stamp(subscriber.paused_until),
        "pause_ends_at": _stamp(subscriber.pause_ends_at),
        "subscriptions": [
            {
                "topic": s.topic.slug,
                "topic_name": s.topic.name,
                "frequency": s.frequency,
                "created_at": _stamp(s.created_at),
                "ended_at": _stamp(s.ended_at),
                "ended_reason": s.ended_reason,
                "delivered_until": _stamp(s.delivered_until),
            }
            for s in subscription_history(subscriber)
        ],
        "signup_requests": [
            {
                "topic_ids": r.topic_ids,
                "frequency": r.frequency,
                "timezone": r.timezone,
                "daily_hour": r.daily_hour,
                "weekly_day": r.weekly_day,
                "weekly_hour": r.weekly_hour,
                "created_at": _stamp(r.created_at),
                "confirmed_at": _stamp(r.confirmed_at),
            }
            for r in signup_requests_of(subscriber)
        ],
        "emails": [
            _stamped({key: value for key, value in email.items() if key != "id"})
            for email in subscriber_emails(subscriber)
        ],
        "other_delivery_events": _loose_delivery_events(subscriber),
        "digests": [
            {
                "frequency": row.frequency,
                "window_end": _stamp(row.window_end),
                "run_id": row.run_id,
                "article_count": row.article_count,
                "sent": row.body_id is not None,
            }
            for row in db.session.scalars(
                select(DigestDelivery)
                .where(DigestDelivery.subscriber_id == subscriber.id)
                .order_by(DigestDelivery.window_end, DigestDelivery.frequency)
            )
        ],
        "alerts": [
            {
                "article_id": row.article_id,
                "revision": row.revision,
                "created_at": _stamp(row.created_at),
                "carried_over": row.carried_over,
                "digest_run_id": row.digest_run_id,
            }
            for row in db.session.scalars(
                select(AlertDelivery)
                .where(AlertDelivery.subscriber_id == subscriber.id)
                .order_by(AlertDelivery.id)
            )
        ],
        "suppression": None
        if suppression is None
        else {
            "reason": suppression.reason,
            "source": suppression.source,
            "detail": suppression.detail,
            "created_at": _stamp(suppression.created_at),
        },
    }


def _loose_delivery_events(subscriber: Subscriber) -> list[dict[str, Any]]:
    """Events about the subscriber's address not tied to one of their email rows (those are
    listed with their email by ``subscriber_emails``)."""
    theirs = select(OutboxEmail.id).where(OutboxEmail.subscriber_id == subscriber.id)
    return [
        {
            "kind": event.kind,
            "email": event.email,
            "occurred_at": _stamp(event.occurred_at),
            "detail": event.detail,
        }
        for event in db.session.scalars(
            select(DeliveryEvent)
            .where(
                DeliveryEvent.email.in_(_address_forms(subscriber.email)),
                or_(DeliveryEvent.outbox_id.is_(None), DeliveryEvent.outbox_id.not_in(theirs)),
            )
            .order_by(DeliveryEvent.occurred_at, DeliveryEvent.id)
        )
    ]


def erase_subscriber(subscriber: Subscriber) -> None:
    """Forget the person: end every subscription, drop unsent mail, anonymise the address.

    Every signup request goes too, confirmed or not: it holds the topics they asked for,
    and it is what their old confirm links point at. The subscription history stays
    (``ended_reason='erased'``) without anything that identifies them, so counts and
    delivery statistics stay true. The address goes from every row that held it: outbox
    rows, what SES reported (``delivery_events``), and the suppression list, which keeps
    only a hash of it (``address_hash``) so that mail to it stays stopped if it signs up
    again.
    """
    forms = _address_forms(subscriber.email)
    end_subscriptions(subscriber.id, None, EndedReason.ERASED)
    db.session.execute(
        delete(SignupRequest)
        .where(SignupRequest.subscriber_id == subscriber.id)
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        update(OutboxEmail)
        .where(
            OutboxEmail.subscriber_id == subscriber.id,
            OutboxEmail.status.in_([OutboxStatus.QUEUED, OutboxStatus.SENDING]),
        )
        .values(status=OutboxStatus.FAILED, last_error="subscriber erased")
        .execution_options(synchronize_session=False)
    )
    theirs = select(OutboxEmail.id).where(OutboxEmail.subscriber_id == subscriber.id)
    db.session.execute(
        update(DeliveryEvent)
        .where(or_(DeliveryEvent.email.in_(forms), DeliveryEvent.outbox_id.in_(theirs)))
        .values(email="")
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        update(OutboxEmail)
        .where(or_(OutboxEmail.subscriber_id == subscriber.id, OutboxEmail.to_address.in_(forms)))
        .values(to_address=ERASED_ADDRESS, context={})
        .execution_options(synchronize_session=False)
    )
    _hash_suppression(forms)
    subscriber.email = f"erased-{subscriber.id}{ERASED_ADDRESS_SUFFIX}"
    subscriber.erased_at = utcnow()
    subscriber.paused_until = None


def _hash_suppression(forms: list[str]) -> None:
    """Replace a suppressed address by its hash (one row per address: if the hash is
    already there, from an earlier erasure, the address row just goes)."""
    suppressed = db.session.scalars(
        select(Suppression).where(Suppression.email.in_(forms)).order_by(Suppression.id)
    ).all()
    if not suppressed:
        return
    hashed = address_hash(suppressed[0].email)
    kept = db.session.scalars(select(Suppression).where(Suppression.email == hashed)).first()
    for row in suppressed:
        if kept is None:
            row.email = hashed
            row.detail = None
            kept = row
        else:
            db.session.delete(row)
    db.session.flush()


def delete_unconfirmed_signup_requests(created_before: datetime) -> int:
    """Delete signup requests nobody confirmed that were made before ``created_before``."""
    result = db.session.execute(
        delete(SignupRequest).where(
            SignupRequest.confirmed_at.is_(None), SignupRequest.created_at < created_before
        )
    )
    return result.rowcount
