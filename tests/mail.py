"""Reading the email a test caused: run the real worker, parse the real ``.eml`` files."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from alertsvc.delivery.worker import Worker
from alertsvc.extensions import db
from alertsvc.models import OutboxEmail

_URL = re.compile(r"https?://[^\s<>\"']+")


@dataclass
class Mailbox:
    app: Flask
    directory: Path

    def deliver(self) -> list[EmailMessage]:
        """Send everything queued (worker in burst mode); return the new messages in the
        order they were queued."""
        before = set(self.directory.glob("*.eml"))
        Worker(self.app, burst=True).run()
        return self._in_queue_order(set(self.directory.glob("*.eml")) - before)

    def all(self) -> list[EmailMessage]:
        return self._in_queue_order(set(self.directory.glob("*.eml")))

    def _in_queue_order(self, paths: set[Path]) -> list[EmailMessage]:
        """By outbox row, not by file time: the worker's threads write files in any order."""
        with self.app.app_context():
            queued = dict(db.session.execute(select(OutboxEmail.message_id, OutboxEmail.id)).all())
            db.session.remove()
        messages = [read_message(path) for path in paths]
        return sorted(messages, key=lambda message: queued.get(str(message["Message-ID"]), 0))


def read_message(path: Path) -> EmailMessage:
    with path.open("rb") as handle:
        return email.message_from_binary_file(handle, policy=email.policy.default)  # type: ignore[return-value]


def text_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "message has no text part"
    return part.get_content()


def html_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None, "message has no HTML part"
    return part.get_content()


def links(message: EmailMessage) -> list[str]:
    return _URL.findall(text_part(message))


def link_path(message: EmailMessage, prefix: str) -> str:
    """The path of the one link in the text part whose path starts with ``prefix``."""
    found = {re.sub(r"^https?://[^/]+", "", url) for url in links(message)}
    matches = [path for path in found if path.startswith(prefix)]
    assert len(matches) == 1, f"expected one {prefix} link, found {matches}"
    return matches[0]
