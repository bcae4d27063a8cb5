"""Queueing email: the only way any part of alertsvc sends mail."""

from __future__ import annotations

from datetime import datetime
from email.utils import make_msgid
from typing import Any

from flask import current_app

from alertsvc.config import sender_domain
from alertsvc.delivery.wakeup import OUTBOX_CHANNEL, notify_once
from alertsvc.extensions import db
from alertsvc.metrics import count_queued
from alertsvc.models import OutboxEmail


def clean_header(value: str) -> str:
    """Fold any whitespace, CR and LF included, to single spaces: no header injection."""
    return " ".join(str(value).split())


def mail_domain() -> str:
    """The sender's domain, which Message-IDs are made on."""
    return sender_domain(current_app.config["MAIL_FROM"])


def row_message_id(row_id: int, created_at: datetime) -> str:
    """The Message-ID of a row queued without one (digests): unique, and the same on retry."""
    return f"<{created_at:%Y%m%d%H%M%S%f}.{row_id}@{mail_domain()}>"


def queue_email(
    *,
    template: str,
    to_address: str,
    subject: str,
    context: dict[str, Any] | None = None,
    subscriber_id: int | None = None,
    unsubscribe_topic_ids: list[int] | None = None,
) -> OutboxEmail:
    """Add an email to the outbox in the caller's transaction.

    ``unsubscribe_topic_ids`` marks a subscription email: it gets RFC 8058 one-click
    unsubscribe headers that end the subscriber's subscriptions to those topics.
    Idle workers are woken when the transaction commits (PostgreSQL ``NOTIFY``).
    """
    email = OutboxEmail(
        template=template,
        to_address=to_address,
        subject=clean_header(subject)[:300],
        context=context or {},
        subscriber_id=subscriber_id,
        unsubscribe_topic_ids=unsubscribe_topic_ids,
        message_id=make_msgid(domain=mail_domain()),
    )
    db.session.add(email)
    notify_once(db.session, OUTBOX_CHANNEL)
    count_queued(db.session.connection(), template)
    return email
