"""What the privacy notice and accessibility statement say, read from the settings and from
the committed axe results, so the pages stay true when either changes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

# Written by ``make accessibility-report`` (tests/browser/axe_report.py).
ACCESSIBILITY_RESULTS = Path(__file__).with_name("accessibility_results.json")
SECONDS_A_DAY = 24 * 3600
# axe-core's rule tags, in the words of the standard they check.
RULE_TAGS = {
    "wcag2a": "WCAG 2.0 level A",
    "wcag2aa": "WCAG 2.0 level AA",
    "wcag21a": "WCAG 2.1 level A",
    "wcag21aa": "WCAG 2.1 level AA",
    "wcag22aa": "WCAG 2.2 level AA",
}


@dataclass(frozen=True)
class Retention:
    """How long each kind of record is kept, in days (None: no limit of ours)."""

    signup_request_days: int
    outbox_days: int
    runs_days: int
    unsubscribed_days: int
    log_days: int | None
    confirm_link_days: float
    manage_link_days: float


def retention(config: Mapping[str, Any]) -> Retention:
    """The retention figures the notice quotes, straight from the settings the purge reads."""
    return Retention(
        signup_request_days=int(config["SIGNUP_REQUEST_RETENTION_DAYS"]),
        outbox_days=config["RETENTION_OUTBOX_DAYS"],
        runs_days=config["RETENTION_RUNS_DAYS"],
        unsubscribed_days=config["RETENTION_UNSUBSCRIBED_DAYS"],
        log_days=config["LOG_RETENTION_DAYS"],
        confirm_link_days=int(config["CONFIRM_TOKEN_MAX_AGE"]) / SECONDS_A_DAY,
        manage_link_days=int(config["MANAGE_TOKEN_MAX_AGE"]) / SECONDS_A_DAY,
    )


def duration(days: float) -> str:
    """``1 day``, ``30 days``, ``36 hours``, ``20 minutes``: a period in the words a reader
    uses, exactly: in the largest unit that divides it (never rounded to a longer or shorter
    period than the setting gives)."""
    minutes = round(days * 24 * 60)
    for size, unit in ((24 * 60, "day"), (60, "hour"), (1, "minute")):
        if minutes % size == 0:
            count = minutes // size
            return f"1 {unit}" if count == 1 else f"{count} {unit}s"
    raise AssertionError("unreachable: every whole number of minutes divides by 1")


@dataclass(frozen=True)
class CheckedPage:
    path: str
    checks: int
    violations: int


@dataclass(frozen=True)
class AccessibilityResults:
    """The last automated accessibility check of the pages (``make accessibility-report``)."""

    tool: str
    tool_version: str
    checked_on: date
    rules: list[str]
    pages: list[CheckedPage]

    @property
    def standards(self) -> str:
        """The axe rule tags in words: ``WCAG 2.0 level A, WCAG 2.1 level AA``."""
        names = [RULE_TAGS.get(tag, tag) for tag in self.rules]
        return ", ".join(sorted(names))

    @property
    def violations(self) -> int:
        return sum(page.violations for page in self.pages)

    def public_pages(self) -> list[CheckedPage]:
        return [page for page in self.pages if not page.path.startswith("/admin")]

    def admin_pages(self) -> list[CheckedPage]:
        return [page for page in self.pages if page.path.startswith("/admin")]


def accessibility_results(path: Path = ACCESSIBILITY_RESULTS) -> AccessibilityResults | None:
    """The committed results, or None when there are none (the statement then says so)."""
    try:
        data = json.loads(path.read_text())
        return AccessibilityResults(
            tool=data["tool"],
            tool_version=data["tool_version"],
            checked_on=date.fromisoformat(data["checked_on"]),
            rules=list(data["rules"]),
            pages=[
                CheckedPage(path=page["path"], checks=page["checks"], violations=page["violations"])
                for page in data["pages"]
            ],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
