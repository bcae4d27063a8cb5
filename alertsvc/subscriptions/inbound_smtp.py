"""``alertsvc inbound-smtp``: receive mail sent to the ``List-Unsubscribe`` mailto address.

For deployments that send over SMTP rather than SES: point the unsubscribe address's MX (or
the mail server that hosts it, forwarding) at this listener. It accepts mail for that one
address and refuses every other recipient (``550``), so it relays nothing and stores
nothing; each message's token is acted on by ``mail_unsubscribe`` in a transaction of its
own. A message is accepted (``250``) whether or not it held a valid token, since a sender
can do nothing better with a refusal; a database that cannot be reached answers ``451`` so
the sending server tries again later.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from alertsvc.database import transaction
from alertsvc.subscriptions.mail_unsubscribe import (
    MAX_MESSAGE_BYTES,
    MailUnsubscribe,
    is_unsubscribe_address,
    unsubscribe_by_mail,
)

log = logging.getLogger(__name__)

# An unsubscribe request goes to one address; more recipients than this is not one.
MAX_RECIPIENTS = 10
# A client that says nothing for this long is dropped.
IDLE_TIMEOUT_SECONDS = 60


class UnsubscribeHandler:
    """aiosmtpd hooks: accept the unsubscribe address only, act on each message's token."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.mailto: str = app.config["UNSUBSCRIBE_MAILTO"]

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if not is_unsubscribe_address(address, self.mailto):
            return "550 5.1.1 No such mailbox here"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "replace")
        loop = asyncio.get_running_loop()
        try:
            done = await loop.run_in_executor(None, self.act, raw)
        except SQLAlchemyError as error:
            log.error("inbound unsubscribe mail not handled (the sender will retry): %s", error)
            return "451 4.3.0 Temporary failure, please try again later"
        log.info("inbound mail to %s: %s", self.mailto, done.result)
        return "250 2.0.0 OK"

    async def handle_exception(self, error: Exception) -> str:
        """Anything unexpected: logged here, and the sender told to try later, never told
        what went wrong (aiosmtpd would send the exception's text)."""
        log.error("inbound SMTP: %s while handling a message", type(error).__name__)
        return "451 4.3.0 Temporary failure, please try again later"

    def act(self, raw: bytes) -> MailUnsubscribe:
        """One message, one transaction: the listener is this unit of work's entry point,
        as a route or a job is for theirs."""
        with self.app.app_context(), transaction():
            return unsubscribe_by_mail(raw)


def listener(app: Flask, host: str, port: int) -> Controller:
    """An SMTP server for the unsubscribe address on ``host:port``, not yet started.

    No AUTH (nobody signs in to give us mail), and aiosmtpd's per-command log kept to
    warnings: at INFO it writes several lines for every connection.
    """
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    return Controller(
        UnsubscribeHandler(app),
        hostname=host,
        port=port,
        data_size_limit=MAX_MESSAGE_BYTES,
        timeout=IDLE_TIMEOUT_SECONDS,
        ident="alertsvc unsubscribe",
        auth_exclude_mechanism=["LOGIN", "PLAIN"],
    )
