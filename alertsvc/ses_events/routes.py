"""``POST /ses/events``: Amazon SNS delivers SES's bounces, complaints and deliveries here,
and the mail SES receives for the ``List-Unsubscribe`` mailto address.

Answers: 200 handled (or already handled: SNS retries), 400 not an SNS message, 403 failed
verification, 413 too large, 502 a subscription SNS could not be reached to confirm. Only
a verified message changes anything, and each in one transaction with its MessageId.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import httpx
from flask import Blueprint, current_app, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from alertsvc.database import transaction
from alertsvc.extensions import csrf, limiter
from alertsvc.models import utcnow
from alertsvc.ses_events import services, sns

log = logging.getLogger(__name__)

bp = Blueprint("ses_events", __name__)
# SNS signs its posts; it sends no cookie or CSRF token. During an incident it posts by the
# thousand from many addresses: verification, not a rate limit, keeps strangers out.
csrf.exempt(bp)
limiter.exempt(bp)

# SNS messages are at most 256 KiB; the JSON envelope escapes the SES notification inside
# it, which can nearly double it. Nothing larger is SNS's.
MAX_BODY_BYTES = 512 * 1024


def _answer(status: int, result: str) -> ResponseReturnValue:
    key = "result" if status == 200 else "error"
    return {key: result}, status


@bp.post("/ses/events")
def receive_sns_message() -> ResponseReturnValue:
    """Verify an SNS message, then act on it once."""
    request.max_content_length = MAX_BODY_BYTES
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        return _answer(413, f"larger than {MAX_BODY_BYTES} bytes")
    try:
        envelope = sns.parse_envelope(body)
    except sns.MalformedMessage as error:
        log.info("SNS endpoint: refused a malformed post: %s", error)
        return _answer(400, f"not an SNS message: {error}")
    config = current_app.config
    now = utcnow()
    try:
        sns.verify(
            envelope,
            topic_arns=config["SNS_TOPIC_ARNS"],
            max_age=timedelta(seconds=int(config["SNS_MAX_AGE_SECONDS"])),
            now=now,
        )
    except sns.Refused as error:
        log.warning(
            "SNS %s refused (MessageId %r, TopicArn %r): %s",
            envelope.type,
            envelope.message_id[:100],
            envelope.topic_arn[:256],
            error,
        )
        return _answer(403, "verification failed")
    try:
        with transaction():
            if not services.record_sns_message(
                envelope.message_id, envelope.topic_arn, envelope.type, now
            ):
                log.info("SNS message %s already handled", envelope.message_id)
                return _answer(200, "duplicate")
            _act(envelope, now)
    except sns.Refused as error:
        log.warning("SNS %s refused (MessageId %r): %s", envelope.type, envelope.message_id, error)
        return _answer(403, "verification failed")
    except httpx.HTTPError as error:
        log.error(
            "SNS subscription to %s could not be confirmed (SNS will ask again): %s",
            envelope.topic_arn,
            error,
        )
        return _answer(502, "the subscription could not be confirmed")
    return _answer(200, "handled")


def _act(envelope: sns.SnsEnvelope, now: datetime) -> None:
    if envelope.type == sns.SUBSCRIPTION_CONFIRMATION:
        sns.confirm_subscription(
            envelope.subscribe_url or "",
            timeout=float(current_app.config["SNS_CERT_TIMEOUT_SECONDS"]),
        )
        log.info("SNS subscription to %s confirmed", envelope.topic_arn)
        return
    if envelope.type == sns.UNSUBSCRIBE_CONFIRMATION:
        log.warning(
            "SNS: this endpoint was unsubscribed from %s; bounces and complaints from it "
            "will no longer arrive (subscribe again from the SNS console)",
            envelope.topic_arn,
        )
        return
    config = current_app.config
    try:
        outcome = services.handle_ses_notification(
            envelope.message,
            fallback_time=envelope.timestamp,
            now=now,
            transient=services.TransientBounceRule(
                limit=int(config["TRANSIENT_BOUNCE_LIMIT"]),
                window=timedelta(seconds=int(config["TRANSIENT_BOUNCE_WINDOW_SECONDS"])),
            ),
            unsubscribe_mailto=config["UNSUBSCRIBE_MAILTO"],
        )
    except services.NotUnderstood as error:
        log.warning(
            "SNS message %s on %s is not an SES notification we read, ignored: %s",
            envelope.message_id,
            envelope.topic_arn,
            error,
        )
        return
    if outcome.unsubscribed_by_mail is not None:
        log.info("SES received mail to the unsubscribe address: %s", outcome.unsubscribed_by_mail)
    if outcome.suppressed:
        log.info(
            "SES %s: suppressed %s; %d subscriptions ended",
            outcome.kind,
            ", ".join(outcome.suppressed),
            outcome.subscriptions_ended,
        )
