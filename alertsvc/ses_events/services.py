"""What SES tells us about sent mail: bounces, complaints and deliveries.

Plain functions over the session; the route owns the transaction, one per SNS message,
together with the ``sns_messages`` row that makes a replay change nothing. Both of SES's
formats are read: identity notifications (``notificationType``) and configuration-set
event publishing (``eventType``); the objects inside are the same.

Decisions, per recipient:

- permanent bounce: suppress (``bounce``) and end the address's subscriptions (``bounced``);
- transient or undetermined bounce: record it; ``TRANSIENT_BOUNCE_LIMIT`` of them within
  ``TRANSIENT_BOUNCE_WINDOW_SECONDS`` suppress (``transient_bounces``) and end the
  subscriptions as bounced too: a suppressed address is never mailed again, and a live
  subscription nobody can receive would only queue rows that end as ``suppressed`` and
  count as a reader who is not there;
- complaint: suppress (``complaint``) and end the subscriptions (``complained``);
- delivery: record it, and the outbox row SES names becomes ``delivered``;
- received (SES receiving, a receipt rule's SNS action): mail sent to the unsubscribe
  address of ``List-Unsubscribe``; ``subscriptions.mail_unsubscribe`` acts on its token.
  Mail the rule received for any other address is ignored.

Queued outbox rows to a newly suppressed address are left to the worker, which ends them
as ``suppressed`` when it claims them.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select

from alertsvc.addresses import InvalidAddress, normalise_email
from alertsvc.database import insert_skipping_existing
from alertsvc.delivery.feedback import attach_feedback
from alertsvc.delivery.suppressions import SuppressionSource, suppress_all
from alertsvc.extensions import db
from alertsvc.models import (
    DeliveryEvent,
    DeliveryEventKind,
    EndedReason,
    SnsMessage,
    SuppressionReason,
)
from alertsvc.subscriptions.mail_unsubscribe import (
    MAX_MESSAGE_BYTES,
    MailResult,
    is_unsubscribe_address,
    unsubscribe_by_mail,
)
from alertsvc.subscriptions.services import end_subscriptions_of_addresses

log = logging.getLogger(__name__)

MAX_ADDRESS_LENGTH = 320
MAX_DETAIL_LENGTH = 1000
PERMANENT = "Permanent"


class NotUnderstood(ValueError):
    """A verified message that is not an SES notification we can read (logged, ignored)."""


@dataclass(frozen=True)
class TransientBounceRule:
    limit: int
    window: timedelta


@dataclass
class Outcome:
    """What one SES notification changed, for the log and the response."""

    kind: str
    events: int = 0
    suppressed: list[str] = field(default_factory=list)
    subscriptions_ended: int = 0
    delivered: int = 0
    unsubscribed_by_mail: MailResult | None = None


def record_sns_message(message_id: str, topic_arn: str, message_type: str, now: datetime) -> bool:
    """Claim ``message_id`` in the caller's transaction; False if it was handled before.

    SNS delivers at least once. Inserted in the same transaction as the message's effects,
    a replay (or the same message arriving twice at once: the second insert waits for the
    first transaction, then skips) changes nothing.
    """
    statement = insert_skipping_existing(SnsMessage, ["message_id"]).values(
        message_id=message_id,
        topic_arn=topic_arn[:256],
        message_type=message_type[:64],
        received_at=now,
    )
    inserted = db.session.execute(statement.returning(SnsMessage.message_id)).first()
    return inserted is not None


def handle_ses_notification(
    message: str,
    *,
    fallback_time: datetime,
    now: datetime,
    transient: TransientBounceRule,
    unsubscribe_mailto: str,
) -> Outcome:
    """Apply one SES notification (the SNS ``Message``). ``NotUnderstood`` if it is not one.

    ``fallback_time`` (the SNS timestamp) dates events whose own timestamp is missing;
    ``unsubscribe_mailto`` is the address received mail must be for to be acted on.
    """
    try:
        data = json.loads(message)
    except (ValueError, RecursionError) as error:
        raise NotUnderstood("the Message is not JSON") from error
    if not isinstance(data, dict):
        raise NotUnderstood("the Message is not a JSON object")
    kind = data.get("eventType") or data.get("notificationType")
    mail = data.get("mail")
    if not isinstance(mail, dict):
        mail = {}
    provider_message_id = _text(mail.get("messageId"), 255)
    if kind == "Bounce":
        return _bounce(_object(data, "bounce"), provider_message_id, fallback_time, now, transient)
    if kind == "Complaint":
        return _complaint(_object(data, "complaint"), provider_message_id, fallback_time, now)
    if kind == "Delivery":
        return _delivery(_object(data, "delivery"), provider_message_id, fallback_time)
    if kind == "Received":
        return _received(data, unsubscribe_mailto)
    # Send, Open, Click, DeliveryDelay, AmazonSnsSubscriptionSucceeded …: nothing to do.
    return Outcome(kind=str(kind)[:64])


def _received(data: dict[str, Any], unsubscribe_mailto: str) -> Outcome:
    """Mail SES received and published whole (the SNS action): an unsubscribe by email.

    SES sends the message in ``content``, as text or, with the action's ``BASE64``
    encoding, base64. Only mail the rule received for the unsubscribe address is read.
    """
    receipt = _object(data, "receipt")
    recipients = receipt.get("recipients")
    if not isinstance(recipients, list) or not any(
        isinstance(recipient, str) and is_unsubscribe_address(recipient, unsubscribe_mailto)
        for recipient in recipients[:100]
    ):
        log.info("SES received mail not for %s: ignored", unsubscribe_mailto)
        return Outcome(kind="Received")
    content = data.get("content")
    if not isinstance(content, str):
        raise NotUnderstood("the Received notification has no content (not an SNS action?)")
    action = receipt.get("action")
    encoding = action.get("encoding") if isinstance(action, dict) else None
    if isinstance(encoding, str) and encoding.upper() == "BASE64":
        try:
            # Not ``validate``: line-wrapped base64 is still the message.
            raw = base64.b64decode(content)
        except (binascii.Error, ValueError) as error:
            raise NotUnderstood("the Received content is not base64") from error
    else:
        raw = content.encode("utf-8", "replace")
    result = unsubscribe_by_mail(raw[: MAX_MESSAGE_BYTES + 1])
    return Outcome(kind="Received", unsubscribed_by_mail=result.result)


def _object(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise NotUnderstood(f"the notification has no {name} object")
    return value


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _address(value: Any) -> str | None:
    """An address SES reports, in the form we store; None for nothing usable.

    SES reports the address as we sent it, so ``normalise_email`` gives it back; anything
    it refuses is still compared lower-cased rather than dropped.
    """
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ADDRESS_LENGTH:
        return None
    try:
        return normalise_email(value)
    except InvalidAddress:
        return value.strip().lower()


def _occurred_at(details: dict[str, Any], fallback: datetime) -> datetime:
    value = details.get("timestamp")
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return fallback
        if parsed.tzinfo is not None:
            return parsed
    return fallback


def _record_events(
    kind: DeliveryEventKind,
    details: Mapping[str, str | None],
    provider_message_id: str | None,
    occurred_at: datetime,
) -> int:
    """One ``delivery_events`` row per address, in one statement."""
    if not details:
        return 0
    db.session.execute(
        insert(DeliveryEvent),
        [
            {
                "kind": kind,
                "email": email,
                "outbox_id": None,
                "provider_message_id": provider_message_id,
                "occurred_at": occurred_at,
                "detail": detail,
            }
            for email, detail in details.items()
        ],
    )
    return len(details)


def _attach(provider_message_id: str | None) -> int:
    """Join the events just recorded to the row SES names (see ``delivery.feedback``)."""
    return attach_feedback([provider_message_id]) if provider_message_id is not None else 0


def _recipients(entries: Any, key: str | None) -> list[str]:
    """The distinct addresses of a recipient list (objects with ``key``, or plain strings)."""
    found: dict[str, None] = {}
    for entry in entries if isinstance(entries, list) else []:
        value = entry.get(key) if key and isinstance(entry, dict) else entry
        address = _address(value)
        if address:
            found[address] = None
    return list(found)


def _suppress_and_end(
    outcome: Outcome,
    details: Mapping[str, str | None],
    reason: SuppressionReason,
    ended: EndedReason,
    now: datetime,
) -> None:
    if not details:
        return
    suppress_all(details, reason, SuppressionSource.SES, now)
    outcome.suppressed += list(details)
    outcome.subscriptions_ended += end_subscriptions_of_addresses(details, ended, now)


def _bounce(
    bounce: dict[str, Any],
    provider_message_id: str | None,
    fallback_time: datetime,
    now: datetime,
    transient: TransientBounceRule,
) -> Outcome:
    bounce_type = _text(bounce.get("bounceType"), 64) or "Undetermined"
    sub_type = _text(bounce.get("bounceSubType"), 64) or "Undetermined"
    details: dict[str, str | None] = {}
    for entry in bounce.get("bouncedRecipients") or []:
        address = _address(entry.get("emailAddress")) if isinstance(entry, dict) else None
        if address:
            diagnostic = _text(entry.get("diagnosticCode"), MAX_DETAIL_LENGTH)
            words = f"{bounce_type} {sub_type}" + (f": {diagnostic}" if diagnostic else "")
            details[address] = words[:MAX_DETAIL_LENGTH]
    if not details:
        raise NotUnderstood("the bounce names no recipient")
    occurred_at = _occurred_at(bounce, fallback_time)
    permanent = bounce_type == PERMANENT
    kind = DeliveryEventKind.PERMANENT_BOUNCE if permanent else DeliveryEventKind.TRANSIENT_BOUNCE
    outcome = Outcome(kind=kind)
    outcome.events = _record_events(kind, details, provider_message_id, occurred_at)
    _attach(provider_message_id)
    if permanent:
        _suppress_and_end(outcome, details, SuppressionReason.BOUNCE, EndedReason.BOUNCED, now)
        return outcome
    too_many = _too_many_transient_bounces(list(details), now - transient.window, transient.limit)
    _suppress_and_end(
        outcome,
        {
            email: f"{count} soft bounces within {_duration(transient.window)}; "
            f"the last: {details[email]}"[:MAX_DETAIL_LENGTH]
            for email, count in too_many.items()
        },
        SuppressionReason.TRANSIENT_BOUNCES,
        EndedReason.BOUNCED,
        now,
    )
    return outcome


def _too_many_transient_bounces(emails: list[str], since: datetime, limit: int) -> dict[str, int]:
    """Address -> count of those of ``emails`` with ``limit`` or more soft bounces since."""
    return dict(
        db.session.execute(
            select(DeliveryEvent.email, func.count())
            .where(
                DeliveryEvent.kind == DeliveryEventKind.TRANSIENT_BOUNCE,
                DeliveryEvent.email.in_(emails),
                DeliveryEvent.occurred_at >= since,
            )
            .group_by(DeliveryEvent.email)
            .having(func.count() >= limit)
        ).all()
    )


def _duration(window: timedelta) -> str:
    days, seconds = window.days, window.seconds
    if seconds == 0 and days:
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{int(window.total_seconds())} seconds"


def _complaint(
    complaint: dict[str, Any],
    provider_message_id: str | None,
    fallback_time: datetime,
    now: datetime,
) -> Outcome:
    feedback = _text(complaint.get("complaintFeedbackType"), 64)
    detail = f"complaint: {feedback}" if feedback else "complaint"
    recipients = _recipients(complaint.get("complainedRecipients"), "emailAddress")
    if not recipients:
        raise NotUnderstood("the complaint names no recipient")
    details: dict[str, str | None] = dict.fromkeys(recipients, detail)
    outcome = Outcome(kind=DeliveryEventKind.COMPLAINT)
    outcome.events = _record_events(
        DeliveryEventKind.COMPLAINT,
        details,
        provider_message_id,
        _occurred_at(complaint, fallback_time),
    )
    _attach(provider_message_id)
    _suppress_and_end(outcome, details, SuppressionReason.COMPLAINT, EndedReason.COMPLAINED, now)
    return outcome


def _delivery(
    delivery: dict[str, Any], provider_message_id: str | None, fallback_time: datetime
) -> Outcome:
    recipients = _recipients(delivery.get("recipients"), None)
    if not recipients:
        raise NotUnderstood("the delivery names no recipient")
    occurred_at = _occurred_at(delivery, fallback_time)
    response = _text(delivery.get("smtpResponse"), MAX_DETAIL_LENGTH)
    outcome = Outcome(kind=DeliveryEventKind.DELIVERY)
    outcome.events = _record_events(
        DeliveryEventKind.DELIVERY,
        dict.fromkeys(recipients, response),
        provider_message_id,
        occurred_at,
    )
    # A sent row is now delivered; one still being sent becomes so when its worker records
    # it (delivery.feedback joins the two from either side).
    outcome.delivered = _attach(provider_message_id)
    return outcome
