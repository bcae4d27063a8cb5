"""Joining what SES reported about a message to the outbox row it is about.

SES can report a delivery (or a bounce) before the worker that sent the message has
recorded its result: the worker records a batch once every send in it has returned, and at
a low send rate a batch takes seconds. So the join is made from both sides, with the same
statements: when an event arrives (``ses_events``) and when a batch's results are recorded
(the worker). Whichever comes second finds the other.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import exists, func, select, update

from alertsvc.extensions import db
from alertsvc.models import DeliveryEvent, DeliveryEventKind, OutboxEmail, OutboxStatus


def attach_feedback(provider_message_ids: Collection[str]) -> int:
    """Link the events about these messages to their rows, and mark a sent row delivered
    once a delivery was reported; returns how many rows became ``delivered``.

    Set-based, two statements for a whole batch; both look messages up by the provider's
    id, which is indexed on both tables.
    """
    if not provider_message_ids:
        return 0
    ids = sorted(set(provider_message_ids))
    outbox = OutboxEmail.__table__
    events = DeliveryEvent.__table__
    db.session.execute(
        update(events)
        .where(events.c.outbox_id.is_(None), events.c.provider_message_id.in_(ids))
        .values(
            outbox_id=select(func.min(outbox.c.id))
            .where(outbox.c.provider_message_id == events.c.provider_message_id)
            .scalar_subquery()
        )
    )
    delivery = (
        select(func.min(events.c.occurred_at))
        .where(
            events.c.provider_message_id == outbox.c.provider_message_id,
            events.c.kind == DeliveryEventKind.DELIVERY,
        )
        .scalar_subquery()
    )
    return db.session.execute(
        update(outbox)
        .where(
            outbox.c.provider_message_id.in_(ids),
            outbox.c.status == OutboxStatus.SENT,
            exists().where(
                events.c.provider_message_id == outbox.c.provider_message_id,
                events.c.kind == DeliveryEventKind.DELIVERY,
            ),
        )
        .values(status=OutboxStatus.DELIVERED, delivered_at=delivery)
    ).rowcount
