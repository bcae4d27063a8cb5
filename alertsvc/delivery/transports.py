"""Mail transports: where a built message goes (``file``, ``smtp``, ``ses``), and the errors
they raise, which decide whether the worker retries."""

from __future__ import annotations

import os
import re
import tempfile
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from flask import Flask


class SendError(Exception):
    """A message was not sent."""

    transient = False


class TransientSendError(SendError):
    """Worth retrying later: throttling, a timeout, a server that is briefly away."""

    transient = True


class PermanentSendError(SendError):
    """Retrying will not help: a rejected address, a message the provider refuses."""


class SendingPausedError(SendError):
    """The provider will send nothing for now (SES ``SendingPausedException``,
    ``AccountSuspendedException``): every worker stops sending and the mail stays queued."""

    transient = True


class Transport(Protocol):
    def send(self, message: EmailMessage) -> str:
        """Send ``message``; return the provider's id for it. Must be thread-safe."""
        ...

    def max_send_rate(self) -> float | None:
        """The provider's own limit in emails per second (SES's ``MaxSendRate``), or None."""
        ...

    def close(self) -> None:
        """Let go of connections; called once, when the worker stops."""
        ...


class FileTransport:
    """Writes each message as an ``.eml`` file: the development and demo transport.

    The file is named after the Message-ID, so sending the same row twice (a retry after a
    crash) leaves one file, and is written under a temporary name then renamed, so a reader
    never sees half a message.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def send(self, message: EmailMessage) -> str:
        message_id = str(message["Message-ID"]).strip("<>")
        name = re.sub(r"[^A-Za-z0-9.@_-]", "_", message_id) + ".eml"
        try:
            with tempfile.NamedTemporaryFile(
                "wb", dir=self.directory, suffix=".tmp", delete=False
            ) as handle:
                handle.write(message.as_bytes())
            os.replace(handle.name, self.directory / name)
        except OSError as error:
            raise TransientSendError(f"could not write {name}: {error}") from error
        return name

    def max_send_rate(self) -> float | None:
        return None

    def close(self) -> None:
        pass


def make_transport(app: Flask, concurrency: int) -> Transport:
    """The transport named by ``MAIL_TRANSPORT``, for a worker sending with ``concurrency``
    threads.

    ``load_config`` refuses, at start-up, a name not in ``MAIL_TRANSPORTS`` and settings
    the transport could not work with, so this builds what passed those checks.
    """
    config = app.config
    # Imported here: those modules import this one's errors, and only a worker that uses
    # SES needs boto3 loaded.
    if config["MAIL_TRANSPORT"] == "ses":
        from alertsvc.delivery.ses import SesTransport

        return SesTransport.from_config(config, concurrency)
    if config["MAIL_TRANSPORT"] == "smtp":
        from alertsvc.delivery.smtp import SmtpTransport

        return SmtpTransport.from_config(config)
    return FileTransport(config["MAIL_DIR"])
