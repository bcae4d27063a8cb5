"""Small wording helpers shared by pages, emails, services and the CLI."""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 article``, ``2 articles``: every count printed agrees with its noun."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"
