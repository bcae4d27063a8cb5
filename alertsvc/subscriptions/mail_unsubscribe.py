"""Unsubscribe by email: act on mail sent to the ``mailto:`` of ``List-Unsubscribe``.

Every subscription email's ``List-Unsubscribe`` offers
``mailto:<UNSUBSCRIBE_MAILTO>?subject=unsubscribe%20<token>``, the token being the same
signed one-click token as the https link. A mail client that unsubscribes that way sends a
message to the address with that subject. Mail reaches us two ways, and both end here:

- SES receiving: a receipt rule publishes the message to SNS, which posts it to
  ``/ses/events`` (verified like bounces; ``ses_events`` hands the raw message here);
- ``alertsvc inbound-smtp``, a small SMTP listener for deployments that send over SMTP.

The signed token is what authorises the unsubscribe, as it is for the link; the sender's
address is not checked, because forwarding and aliases change it, and a stranger cannot make
a token. The token is looked for in the Subject first, then in the first text part (some
clients drop or rewrite the subject); the first one that verifies acts. Automatic replies
(``Auto-Submitted``) are ignored: an out-of-office quoting an email is nobody asking to
leave. Nothing is ever sent back: a reply to a forged sender would be backscatter.

Plain functions over the session; the caller owns the transaction.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import idna

from alertsvc.config import ascii_domain
from alertsvc.subscriptions import services
from alertsvc.tokens import InvalidToken, TokenPurpose, read_token

log = logging.getLogger(__name__)

# SES publishes messages of at most 150 KB to SNS; an unsubscribe request is a few hundred
# bytes. Anything much larger is not one, and is not parsed.
MAX_MESSAGE_BYTES = 256 * 1024
# How much of the first text part is searched for a token.
MAX_BODY_CHARS = 10_000
# Tokens tried per message: a message stuffed with token-shaped text costs a few HMACs only.
MAX_CANDIDATES = 5
# An itsdangerous URL-safe timed token: payload (a leading "." when compressed), timestamp
# and signature, in base64url, joined by dots.
_TOKEN = re.compile(r"(?<![\w.-])\.?[\w-]{2,2000}\.[\w-]{4,16}\.[\w-]{16,200}(?![\w-])")


class MailResult(enum.StrEnum):
    """What became of one message to the unsubscribe address (logged; never answered)."""

    UNSUBSCRIBED = "unsubscribed"
    NO_TOKEN = "no token"  # noqa: S105 - an outcome, not a password
    INVALID_TOKEN = "invalid token"  # noqa: S105
    NOT_READABLE = "not readable"
    AUTOMATIC_REPLY = "automatic reply"


@dataclass(frozen=True)
class MailUnsubscribe:
    """What one message to the unsubscribe address did."""

    result: MailResult
    subscriber_id: int | None = None
    ended: list[str] = field(default_factory=list)


def is_unsubscribe_address(address: str, unsubscribe_mailto: str) -> bool:
    """Whether ``address`` (an envelope or header recipient) is the unsubscribe address.

    Case-insensitive (ASCII), the domain compared in its ASCII form by the same rule that
    made the setting's (``config.ascii_domain``).
    """
    local, at, domain = address.strip().strip("<>").rpartition("@")
    if not at or not local:
        return False
    try:
        domain = ascii_domain(domain)
    except (idna.IDNAError, UnicodeError):
        return False
    return f"{local}@{domain}".lower() == unsubscribe_mailto.lower()


def _parse(raw: bytes) -> EmailMessage | None:
    if len(raw) > MAX_MESSAGE_BYTES:
        return None
    try:
        return BytesParser(policy=policy.default).parsebytes(raw)  # type: ignore[return-value]
    except (ValueError, TypeError, LookupError, RecursionError):
        return None


def _texts(message: EmailMessage) -> list[str]:
    """Where a token may be: the Subject, then the first text part."""
    texts: list[str] = []
    # A malformed header or part is a message without that text, never an error.
    with contextlib.suppress(ValueError, TypeError, LookupError):
        texts.append(str(message.get("Subject", "")))
    with contextlib.suppress(ValueError, TypeError, LookupError, AttributeError, RecursionError):
        part = message.get_body(preferencelist=("plain", "html"))
        if part is not None:
            texts.append(part.get_content()[:MAX_BODY_CHARS])
    return texts


def _automatic(message: EmailMessage) -> bool:
    """An out-of-office or other automatic reply (RFC 3834 ``Auto-Submitted`` other than
    ``no``): it may quote an email's links, but nobody asked to leave."""
    try:
        value = str(message.get("Auto-Submitted", "no"))
    except (ValueError, TypeError, LookupError):
        return False
    return value.split(";", 1)[0].strip().lower() not in ("", "no")


def candidate_tokens(message: EmailMessage) -> list[str]:
    """Token-shaped strings in the Subject, then the body, in order, each once."""
    found: list[str] = []
    for text in _texts(message):
        for match in _TOKEN.finditer(text):
            if match.group() not in found:
                found.append(match.group())
            if len(found) == MAX_CANDIDATES:
                return found
    return found


def unsubscribe_by_mail(raw: bytes) -> MailUnsubscribe:
    """End the subscriptions the first valid unsubscribe token in ``raw`` names.

    Acting twice is harmless (it ends nothing the second time); a token for an erased
    subscriber or one made for another purpose does nothing.
    """
    message = _parse(raw)
    if message is None:
        return MailUnsubscribe(MailResult.NOT_READABLE)
    if _automatic(message):
        return MailUnsubscribe(MailResult.AUTOMATIC_REPLY)
    candidates = candidate_tokens(message)
    if not candidates:
        return MailUnsubscribe(MailResult.NO_TOKEN)
    for token in candidates:
        try:
            payload = read_token(TokenPurpose.UNSUBSCRIBE, token)
            done = services.unsubscribe(payload)
        except InvalidToken:
            continue
        log.info(
            "unsubscribed by email: subscriber %s, %d topics ended",
            done.subscriber_id,
            len(done.ended),
        )
        return MailUnsubscribe(MailResult.UNSUBSCRIBED, done.subscriber_id, done.ended)
    return MailUnsubscribe(MailResult.INVALID_TOKEN)
