"""Sending through any SMTP server: ``ALERTSVC_SMTP_URL``.

``smtp://`` talks in clear (a relay on the same host), ``smtp+starttls://`` upgrades with
STARTTLS and refuses to send if the server does not offer it (a server, or someone in the
middle, that drops STARTTLS must not get the mail and the password in clear), ``smtps://``
is TLS from the first byte. Certificates are checked, against the system's CA store or
``ALERTSVC_SMTP_CA_FILE``. With ``ALERTSVC_DKIM_*`` set, each message is DKIM-signed
(``alertsvc.delivery.dkim_signing``) just before it goes.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
import threading
from collections.abc import Mapping
from contextlib import suppress
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from typing import Any

import dkim

from alertsvc.config import SmtpUrl, smtp_url
from alertsvc.delivery.dkim_signing import DkimSigner
from alertsvc.delivery.transports import PermanentSendError, SendError, TransientSendError

log = logging.getLogger(__name__)

# Postfix "250 2.0.0 Ok: queued as 4F3A21C0D2", Exim "250 OK id=1tQ…", Sendmail "… Message
# accepted for delivery" with the id before it.
_QUEUE_ID = re.compile(r"(?:queued as|id=)\s*([A-Za-z0-9._-]+)", re.IGNORECASE)
# The connection is gone: open a new one, and send the message once more on it.
_DROPPED = (smtplib.SMTPServerDisconnected, ConnectionError)


def one_line(text: object) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(str(text).split())


def smtp_send_error(error: Exception) -> SendError:
    """The error class the worker acts on, worded ``SMTP <code>: <reply>`` on one line.

    4xx replies (421, 451, 452, 454 …) and network trouble are worth retrying; 5xx replies
    (550, 553, 554 …) are not. A refused recipient is judged by the code given for it.
    """
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        [(code, reply)] = list(error.recipients.values())[:1] or [(0, b"recipient refused")]
        return _by_code(code, reply)
    if isinstance(error, smtplib.SMTPAuthenticationError):
        # Wrong for every message alike: keep the mail queued while an operator fixes it.
        return TransientSendError(
            f"SMTP {error.smtp_code}: authentication failed: {one_line(error.smtp_error)}"
        )
    if isinstance(error, smtplib.SMTPResponseException):
        return _by_code(error.smtp_code, error.smtp_error)
    return TransientSendError(f"SMTP {type(error).__name__}: {one_line(error)}")


def _refused(error: Exception) -> bool:
    """A reply refusing this message, on a connection that can carry the next one."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return True
    return isinstance(error, smtplib.SMTPResponseException) and error.smtp_code != 421


def _by_code(code: int, reply: object) -> SendError:
    line = f"SMTP {code}: {one_line(reply)}"
    if 400 <= code < 500:
        return TransientSendError(line)
    if 500 <= code < 600:
        return PermanentSendError(line)
    return TransientSendError(line)


class SmtpTransport:
    """One reused connection per sending thread; a dropped one is replaced once per message.

    Connections are kept in a ``threading.local`` (an ``smtplib.SMTP`` must not be shared
    between threads) and also listed, so ``close`` can say QUIT on every one of them when
    the worker stops.
    """

    def __init__(
        self,
        url: SmtpUrl,
        envelope_from: str,
        *,
        timeout: float = 30,
        ca_file: str | None = None,
        signer: DkimSigner | None = None,
    ) -> None:
        self.url = url
        self.envelope_from = envelope_from
        self.timeout = timeout
        self.tls = ssl.create_default_context(cafile=ca_file) if url.scheme != "smtp" else None
        self.signer = signer
        self._local = threading.local()
        self._open: set[smtplib.SMTP] = set()
        self._open_lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SmtpTransport:
        return cls(
            smtp_url(config["SMTP_URL"]),
            parseaddr(str(config["MAIL_FROM"]))[1],
            timeout=float(config["SMTP_TIMEOUT_SECONDS"]),
            ca_file=config["SMTP_CA_FILE"] or None,
            signer=DkimSigner.from_config(config),
        )

    def send(self, message: EmailMessage) -> str:
        """Send ``message`` as built; return the server's queue id if its reply names one,
        else the Message-ID."""
        recipients = [address for _, address in getaddresses(message.get_all("To", [])) if address]
        payload = self._payload(message)
        connection = getattr(self._local, "connection", None)
        try:
            if connection is None:
                connection = self._connect()
                reply = self._transfer(connection, payload, recipients)
            else:
                try:
                    reply = self._transfer(connection, payload, recipients)
                except _DROPPED as error:
                    log.info("SMTP server dropped the connection (%s); reconnecting", error)
                    self._discard(connection)
                    connection = self._connect()
                    reply = self._transfer(connection, payload, recipients)
        except (smtplib.SMTPException, OSError) as error:
            if connection is not None:
                if _refused(error):
                    # A refusal: end that transaction and keep the connection for the next.
                    self._reset(connection)
                else:
                    # 421 (the server is closing) or a network error: start afresh next time.
                    self._discard(connection)
            raise smtp_send_error(error) from error
        found = _QUEUE_ID.search(one_line(reply))
        return found.group(1) if found else str(message["Message-ID"])

    def _payload(self, message: EmailMessage) -> bytes:
        """The bytes that go after DATA: the message as built, DKIM-signed when set up.

        Signed with CRLF line ends, as the message travels (an ``EmailMessage`` from a test
        may write bare LF, which ``smtplib`` would turn into CRLF after signing).
        """
        raw = message.as_bytes()
        if self.signer is None:
            return raw
        if b"\n" in raw.replace(b"\r\n", b""):
            raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        try:
            return self.signer.sign(raw)
        except dkim.DKIMException as error:
            # This message cannot be signed (malformed headers): sending it unsigned would
            # fail DMARC, and retrying will not help.
            raise PermanentSendError(f"DKIM signing failed: {one_line(error)}") from error

    def _transfer(self, connection: smtplib.SMTP, payload: bytes, recipients: list[str]) -> bytes:
        """MAIL, RCPT, DATA on ``connection``; the server's reply to the DATA.

        Done step by step rather than with ``send_message`` so that the final reply (which
        carries the server's queue id) is kept; ``payload`` holds the headers exactly as
        built.
        """
        code, reply = connection.mail(self.envelope_from)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, self.envelope_from)
        refused = {}
        for recipient in recipients:
            code, reply = connection.rcpt(recipient)
            if code not in (250, 251):
                refused[recipient] = (code, reply)
        if refused or not recipients:
            raise smtplib.SMTPRecipientsRefused(refused)
        code, reply = connection.data(payload)
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)
        return reply

    def _connect(self) -> smtplib.SMTP:
        url = self.url
        connection: smtplib.SMTP
        if url.scheme == "smtps":
            connection = smtplib.SMTP_SSL(
                url.host, url.port, timeout=self.timeout, context=self.tls
            )
        else:
            connection = smtplib.SMTP(url.host, url.port, timeout=self.timeout)
        try:
            connection.ehlo()
            if url.scheme == "smtp+starttls":
                if not connection.has_extn("starttls"):
                    raise smtplib.SMTPNotSupportedError(
                        f"{url.host}:{url.port} does not offer STARTTLS, which "
                        "smtp+starttls:// requires; nothing was sent"
                    )
                connection.starttls(context=self.tls)
                connection.ehlo()
            if url.username is not None:
                connection.login(url.username, url.password or "")
        except BaseException:
            with suppress(Exception):
                connection.close()
            raise
        self._local.connection = connection
        with self._open_lock:
            self._open.add(connection)
        return connection

    def _reset(self, connection: smtplib.SMTP) -> None:
        """End the refused transaction so the connection can carry the next message."""
        try:
            connection.rset()
        except (smtplib.SMTPException, OSError):
            self._discard(connection)

    def _discard(self, connection: smtplib.SMTP) -> None:
        with suppress(Exception):
            connection.close()
        with self._open_lock:
            self._open.discard(connection)
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None

    def max_send_rate(self) -> float | None:
        return None

    def close(self) -> None:
        """QUIT every connection this transport opened, in whichever thread."""
        with self._open_lock:
            connections, self._open = list(self._open), set()
        for connection in connections:
            try:
                connection.quit()
            except (smtplib.SMTPException, OSError):
                with suppress(Exception):
                    connection.close()
