"""Turning an outbox row into a MIME message, at send time."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import quote

import css_inline
from flask import current_app, render_template

from alertsvc.delivery.outbox import clean_header
from alertsvc.models import OutboxEmail, utcnow
from alertsvc.tokens import TokenPurpose, make_token, signed_url, unsubscribe_payload

_inliner = css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)


def build_message(row: OutboxEmail) -> EmailMessage:
    """Render the row's template pair and add the headers every email carries.

    Subscriber links (manage, unsubscribe) are signed here rather than when queued, so that
    one stored body can serve many subscribers.
    """
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

    text = render_template(f"email/{row.template}.txt", **context)
    html = _inliner.inline(render_template(f"email/{row.template}.html", **context))

    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = clean_header(config["MAIL_FROM"])
    message["To"] = clean_header(row.to_address)
    message["Subject"] = clean_header(row.subject)
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = row.message_id
    if config.get("MAIL_REPLY_TO"):
        message["Reply-To"] = clean_header(config["MAIL_REPLY_TO"])
    if unsubscribe_token is not None:
        mailto = config["UNSUBSCRIBE_MAILTO"]
        subject = quote(f"unsubscribe {unsubscribe_token}")
        message["List-Unsubscribe"] = (
            f"<{context['unsubscribe_url']}>, <mailto:{mailto}?subject={subject}>"
        )
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text, cte="quoted-printable")
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    return message
