"""A preview of one subscriber's next digest, made by the code that plans and sends runs.

The next run that serves the subscriber is started in the caller's transaction (its row
and slots, if it does not exist yet), its audience worked out by the planner's own SQL
restricted to this one subscriber, their content rendered as the run renders shared
bodies, and the message built as the worker builds it (``delivery.messages``): subject,
headers and footer are the real ones; the per-subscriber links carry a placeholder
instead of a signed token (``build_message(placeholder_links=True)``), so that whoever
reads the preview cannot manage, export or erase the subscriber with them. The caller rolls the
transaction back, so nothing is written. Articles that arrive before the run ends will
be in the real digest too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_binary_file, policy
from io import BytesIO
from zoneinfo import ZoneInfo

from alertsvc.delivery.messages import OutgoingEmail, build_message
from alertsvc.delivery.outbox import row_message_id
from alertsvc.digests.contents import Digests, RunRef
from alertsvc.digests.planning import start_digest_run, subscriber_profile
from alertsvc.digests.schedule import run_hour_for, scheduled_instant
from alertsvc.extensions import db
from alertsvc.models import EmailBody, OutboxEmail, Subscriber, utcnow


@dataclass
class DigestPreview:
    """The digest a subscriber would get from the run ending ``window_end``; ``message``
    is None when they would get none (nothing new, no topics at that frequency)."""

    frequency: str
    window_end: datetime | None
    message: OutgoingEmail | None = None
    article_count: int = 0
    reason: str = ""

    def _part(self, subtype: str) -> str:
        if self.message is None:
            return ""
        # Read as a mail reader reads the file the worker writes (lines end in \n).
        parsed = message_from_binary_file(BytesIO(self.message.as_bytes()), policy=policy.default)
        part = parsed.get_body(preferencelist=(subtype,))
        return part.get_content() if part is not None else ""

    @property
    def subject(self) -> str:
        return (self.message["Subject"] or "") if self.message is not None else ""

    @property
    def html(self) -> str:
        return self._part("html")

    @property
    def text(self) -> str:
        return self._part("plain")


def next_run_end(subscriber: Subscriber, frequency: str, now: datetime) -> datetime:
    """The window end of the next run (after ``now``) that serves this subscriber's
    ``frequency`` digest, the way ``schedule.due_slots`` assigns their local hour to runs;
    not before their pause ends."""
    zone = ZoneInfo(subscriber.timezone)
    after = max(now, subscriber.pause_ends_at or now)
    hour = subscriber.daily_hour if frequency == "daily" else subscriber.weekly_hour
    first_day = after.astimezone(zone).date() - timedelta(days=1)
    for offset in range(10):
        day = first_day + timedelta(days=offset)
        if frequency == "weekly" and day.weekday() != subscriber.weekly_day:
            continue
        end = run_hour_for(scheduled_instant(day, hour, zone))
        if end > now and (subscriber.pause_ends_at is None or subscriber.pause_ends_at <= end):
            return end
    raise ValueError(f"no run for subscriber {subscriber.id} in the next week")  # unreachable


def preview_next_digest(
    subscriber: Subscriber, frequency: str, now: datetime | None = None
) -> DigestPreview:
    """The subscriber's next ``frequency`` digest, exactly as it would be sent.

    Writes the run's row and slots (if new) and the planner's working tables in the
    session's transaction: the caller must roll it back.
    """
    moment = now or utcnow()
    if subscriber.confirmed_at is None or subscriber.erased_at is not None:
        return DigestPreview(frequency, None, reason="They are not a confirmed subscriber.")
    window_end = next_run_end(subscriber, frequency, moment)
    run = start_digest_run(frequency, window_end, trigger="preview")
    db.session.flush()
    profile = subscriber_profile(run, subscriber.id)
    if profile is None:
        return DigestPreview(
            frequency,
            window_end,
            reason=f"They have no {frequency} subscription with anything left to send in that run.",
        )
    digests = Digests(RunRef(run.id, run.frequency, run.window_end))
    digests.plan({profile}, None)
    content = digests.contents.get(profile)
    if content is None:
        return DigestPreview(
            frequency,
            window_end,
            reason="Nothing new in their topics yet: as things stand that run sends them nothing.",
        )
    rendered = digests.render(content)
    body = EmailBody(
        content_key=rendered.content_key,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
    )
    # The outbox row as the planner writes it and a worker's claim completes it.
    row = OutboxEmail(
        template="digest",
        context={},
        subscriber_id=subscriber.id,
        unsubscribe_topic_ids=list(content.topic_ids),
        body_id=None,
        run_id=run.id,
        to_address=subscriber.email,
        subject=rendered.subject,
        message_id=row_message_id(0, moment),
        created_at=moment,
    )
    return DigestPreview(
        frequency,
        window_end,
        message=build_message(row, body, placeholder_links=True),
        article_count=content.count,
    )
