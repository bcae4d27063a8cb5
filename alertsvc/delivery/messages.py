"""Turning an outbox row into a MIME message, at send time."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import quote

import css_inline
from email_validator import EmailNotValidError, validate_email
from flask import current_app, render_template

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


def build_message(row: OutboxEmail, body: EmailBody | None = None) -> EmailMessage:
    """Render the row's template pair (or fill in its shared ``body``) and add the headers.

    Subscriber links (manage, unsubscribe) are signed here rather than when queued, so that
    one stored body can serve many subscribers.
    """
    if row.to_address is None:
        raise ValueError(f"outbox email {row.id} has no address: its subscriber is gone")
    config = current_app.config
    context = dict(row.context)
    context.setdefault("site_name", config["SITE_NAME"])
    context.setdefault("base_url", config["BASE_URL"])
    unsubscribe_token = None
    if row.subscriber_id is not None:
        context["manage_url"] = signed_url(TokenPurpose.MANAGE, row.subscriber_id)
    if row.is_subscription_email and row.subscriber_id is not None:
        payload = unsubscribe_payload(row.subscriber_id, row.unsubscribe_topic_ids)
        unsubscribe_token = make_token(TokenPurpose.UNSUBSCRIBE, payload)
        context["unsubscribe_url"] = f"{config['BASE_URL']}/unsubscribe/{unsubscribe_token}"

    if body is not None:
        text, html = _fill_links(body.text, context), _fill_links(body.html, context)
    else:
        text = render_template(f"email/{row.template}.txt", **context)
        html = _inliner.inline(render_template(f"email/{row.template}.html", **context))

    message = EmailMessage(policy=_POLICY)
    message["From"] = clean_header(config["MAIL_FROM"])
    message["To"] = ascii_address(clean_header(row.to_address))
    message["Subject"] = clean_header(row.subject)
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = row.message_id
    if config.get("MAIL_REPLY_TO"):
        message["Reply-To"] = clean_header(config["MAIL_REPLY_TO"])
    if unsubscribe_token is not None:
        mailto = config["UNSUBSCRIBE_MAILTO"]
        subject = quote(f"unsubscribe {unsubscribe_token}")
        message.set_raw(
            "List-Unsubscribe",
            f"<{context['unsubscribe_url']}>,\r\n <mailto:{mailto}?subject={subject}>",
        )
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text, cte="quoted-printable")
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    return message
