"""Small wording helpers shared by pages, emails, services and the CLI."""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 article``, ``2 articles``: every count printed agrees with its noun."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def sentence(message: str) -> str:
    """A service's refusal (``the slug …``, written to follow a colon) as a sentence that
    starts a form error or a JSON error: its first letter capitalised."""
    return message[:1].upper() + message[1:]


# An operator's note in words: why sending is paused, why an address is suppressed or
# allowed again. The admin forms and the CLI take at most this much.
OPERATOR_NOTE_MAX = 500


def one_line(text: str | None) -> str:
    """``text`` on one printable line: no newline, tab or terminal escape gets through, and
    runs of spaces are one."""
    return " ".join("".join(c if c.isprintable() else " " for c in text or "").split())
