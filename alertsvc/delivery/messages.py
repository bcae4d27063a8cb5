"""Turning an outbox row into a MIME message, at send time."""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.policy
import secrets
from dataclasses import dataclass
from email.utils import format_datetime
from functools import lru_cache
from urllib.parse import quote

import css_inline
from email_validator import EmailNotValidError, validate_email
from flask import current_app, render_template

from alertsvc.config import sender_domain
from alertsvc.delivery.outbox import clean_header
from alertsvc.models import EmailBody, OutboxEmail, utcnow
from alertsvc.tokens import TokenPurpose, make_token, signed_url, unsubscribe_payload

# Shared bodies (digests, alerts) carry these where each subscriber's own links go.
MANAGE_PLACEHOLDER = "https://placeholder.alertsvc.invalid/manage"
UNSUBSCRIBE_PLACEHOLDER = "https://placeholder.alertsvc.invalid/unsubscribe"

_inliner = css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)

# Headers stored with ``set_raw`` are written exactly as given: mailbox providers read
# List-Unsubscribe raw (RFC 2369), so its URLs must never be refolded into RFC 2047 words.
_POLICY = email.policy.SMTP.clone(refold_source="none")


def _fill_links(shared: str, context: dict[str, str]) -> str:
    """Put this subscriber's signed links where a shared body has placeholders."""
    return shared.replace(MANAGE_PLACEHOLDER, context.get("manage_url", "")).replace(
        UNSUBSCRIBE_PLACEHOLDER, context.get("unsubscribe_url", "")
    )


def ascii_address(address: str) -> str:
    """The address as an SMTP envelope and a ``To`` header can carry it: an internationalised
    domain in its ASCII (IDNA) form.

    Left as Unicode, the header would hold ``idn@=?utf-8?q?b=C3=BCcher?=.de``, which no server
    reads as an address. Subscribers stored before addresses were stored in ASCII may still
    hold the Unicode form. A local part that is not ASCII cannot be sent (we do not use
    SMTPUTF8; signup refuses such addresses), so it fails the row with a reason.
    """
    if address.isascii():
        return address
    try:
        ascii_form = validate_email(address, check_deliverability=False).ascii_email
    except EmailNotValidError as error:
        raise ValueError(f"cannot send to {address!r}: {error}") from error
    if ascii_form is None:
        raise ValueError(f"cannot send to {address!r}: its local part is not ASCII")
    return ascii_form


@dataclass(frozen=True)
class OutgoingEmail:
    """A message ready to send: its bytes exactly as they go out, and its headers.

    Transports read it as they would an ``EmailMessage`` (``message["From"]``,
    ``get_all("To")``, ``as_bytes()``), so a test can hand them either.
    """

    headers: tuple[tuple[str, str], ...]
    raw: bytes

    def __getitem__(self, name: str) -> str | None:
        found = self.get_all(name)
        return found[0] if found else None

    def get_all(self, name: str, failobj: list[str] | None = None) -> list[str]:
        wanted = name.lower()
        found = [value for key, value in self.headers if key.lower() == wanted]
        return found or ([] if failobj is None else failobj)

    def as_bytes(self) -> bytes:
        return self.raw


@lru_cache(maxsize=4096)
def _folded(name: str, value: str) -> str:
    """``Name: value`` as the SMTP policy writes it: folded, non-ASCII as RFC 2047 words.

    Cached: a digest's subject and the sender are the same for thousands of messages, and
    the email package's header parser costs more than the rest of the message.
    """
    return _POLICY.header_factory(name, value).fold(policy=_POLICY)


_PART_HEAD = (
    'Content-Type: text/{}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
)
# Headers that may carry display names or non-ASCII text: written by the email package's
# SMTP policy (cached). The rest are ASCII made here and written as they are.
_FOLDED_HEADERS = frozenset({"From", "Reply-To", "Subject"})


def _quoted_printable(text: str) -> bytes:
    """``text`` in UTF-8, quoted-printable (RFC 2045 §6.7), CRLF line ends: binascii's C
    encoder, which wraps lines at 76 characters and encodes trailing whitespace."""
    normalised = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(normalised, istext=True).replace(b"\n", b"\r\n")


def _mime(headers: list[tuple[str, str]], text: str, html: str) -> OutgoingEmail:
    """The whole message: ``headers`` (values as they go out, except those folded here),
    then a ``multipart/alternative`` of the text and the HTML, both quoted-printable.

    Written out directly rather than through ``EmailMessage``: at a digest's volume the
    email package's header parsing and pure-Python encoder cost several milliseconds a
    message, more than sending it. The boundary starts with ``=_``, which quoted-printable
    content can never contain.
    """
    boundary = f"=_{secrets.token_hex(16)}"
    lines = [
        _folded(name, value) if name in _FOLDED_HEADERS else f"{name}: {value}\r\n"
        for name, value in headers
    ]
    head = "".join(lines) + (
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'
    )
    raw = b"".join(
        [
            head.encode("ascii"),
            f"--{boundary}\r\n{_PART_HEAD.format('plain')}".encode("ascii"),
            _quoted_printable(text),
            f"\r\n--{boundary}\r\n{_PART_HEAD.format('html')}".encode("ascii"),
            _quoted_printable(html),
            f"\r\n--{boundary}--\r\n".encode("ascii"),
        ]
    )
    return OutgoingEmail(tuple(headers), raw)


def _phrase(text: str) -> str:
    """``text`` as an RFC 5322 display name on one line: a quoted string when ASCII, else
    RFC 2047 base64 words of at most 75 characters each. Whitespace (CR and LF included) is
    folded to single spaces first, so no setting or feed text can start a header of its own."""
    text = clean_header(text)
    if text.isascii():
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    words, chunk = [], ""
    for character in text:
        if len((chunk + character).encode("utf-8")) > 45:
            words.append(chunk)
            chunk = ""
        chunk += character
    words.append(chunk)
    return " ".join(
        f"=?utf-8?b?{base64.b64encode(word.encode('utf-8')).decode('ascii')}?=" for word in words
    )


def list_id(site_name: str, mail_from: str) -> str:
    """The ``List-Id`` (RFC 2919) of every subscription email: the site's name and
    ``alerts.<sender domain>``, so that mail clients can file and filter the alerts."""
    return f"{_phrase(site_name)} <alerts.{_header_token(sender_domain(mail_from))}>"


def _header_token(text: str) -> str:
    """Only what may appear in a Feedback-ID field or a List-Id label: letters, digits,
    dots and hyphens (an internationalised domain in its IDNA form)."""
    with contextlib.suppress(UnicodeError):
        text = text.encode("idna").decode("ascii")
    return "".join(c for c in text if c.isascii() and (c.isalnum() or c in ".-")) or "x"


def campaign(row: OutboxEmail, body: EmailBody | None) -> str:
    """The kind of email, for ``Feedback-ID``: the template, and for a digest its frequency
    (read from the shared body's subject, which ``render_digest`` starts with "Daily" or
    "Weekly": the worker builds messages in threads, away from the database)."""
    if row.template == "digest" and body is not None:
        first = body.subject.split(" ", 1)[0].lower()
        if first in ("daily", "weekly"):
            return f"digest-{first}"
    return _header_token(row.template.replace("_", "-"))


def feedback_id(row: OutboxEmail, body: EmailBody | None, mail_from: str) -> str:
    """Gmail's feedback-loop header, ``topics:campaign:alertsvc:sender-domain``: the topic's
    id (or ``multi`` for several, ``none`` for an email about no topic), the kind of email,
    the service and the sending domain. Colon-separated ASCII; nothing about the reader."""
    topic_ids = row.unsubscribe_topic_ids or []
    topics = str(int(topic_ids[0])) if len(topic_ids) == 1 else "multi" if topic_ids else "none"
    domain = _header_token(sender_domain(mail_from))
    return f"{topics}:{campaign(row, body)}:alertsvc:{domain}"


# Stands in for the signed token in a preview's links: not a signed value, so every
# /manage/ and /unsubscribe/ route refuses it.
PREVIEW_PLACEHOLDER = "PREVIEW"


def build_message(
    row: OutboxEmail, body: EmailBody | None = None, *, placeholder_links: bool = False
) -> OutgoingEmail:
    """Render the row's template pair (or fill in its shared ``body``) and add the headers.

    Subscriber links (manage, unsubscribe) are signed here rather than when queued, so that
    one stored body can serve many subscribers. With ``placeholder_links`` (an operator's
    preview) they carry ``PREVIEW_PLACEHOLDER`` instead: a preview must not hand whoever
    reads it working links that download or erase the subscriber's data.
    """
    if row.to_address is None:
        raise ValueError(f"outbox email {row.id} has no address: its subscriber is gone")
    config = current_app.config
    context = dict(row.context)
    context.setdefault("site_name", config["SITE_NAME"])
    context.setdefault("base_url", config["BASE_URL"])
    unsubscribe_token = None
    if row.subscriber_id is not None:
        context["manage_url"] = (
            f"{config['BASE_URL']}/manage/{PREVIEW_PLACEHOLDER}"
            if placeholder_links
            else signed_url(TokenPurpose.MANAGE, row.subscriber_id)
        )
    if row.is_subscription_email and row.subscriber_id is not None:
        payload = unsubscribe_payload(row.subscriber_id, row.unsubscribe_topic_ids)
        unsubscribe_token = (
            PREVIEW_PLACEHOLDER
            if placeholder_links
            else make_token(TokenPurpose.UNSUBSCRIBE, payload)
        )
        context["unsubscribe_url"] = f"{config['BASE_URL']}/unsubscribe/{unsubscribe_token}"

    if body is not None:
        text, html = _fill_links(body.text, context), _fill_links(body.html, context)
    else:
        text = render_template(f"email/{row.template}.txt", **context)
        html = _inliner.inline(render_template(f"email/{row.template}.html", **context))

    headers = [
        ("From", clean_header(config["MAIL_FROM"])),
        ("To", ascii_address(clean_header(row.to_address))),
        ("Subject", clean_header(row.subject)),
        ("Date", format_datetime(utcnow())),
        ("Message-ID", str(row.message_id)),
        ("Auto-Submitted", "auto-generated"),
        ("Feedback-ID", feedback_id(row, body, config["MAIL_FROM"])),
    ]
    if config.get("MAIL_REPLY_TO"):
        headers.append(("Reply-To", clean_header(config["MAIL_REPLY_TO"])))
    if row.is_subscription_email:
        headers.append(("List-Id", list_id(config["SITE_NAME"], config["MAIL_FROM"])))
    if unsubscribe_token is not None:
        mailto = config["UNSUBSCRIBE_MAILTO"]
        subject = quote(f"unsubscribe {unsubscribe_token}")
        headers.append(
            (
                "List-Unsubscribe",
                f"<{context['unsubscribe_url']}>,\r\n <mailto:{mailto}?subject={subject}>",
            )
        )
        headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    return _mime(headers, text, html)
