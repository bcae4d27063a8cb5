"""One row of ``make reliability``'s table, and the table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

COLUMNS = (
    "scenario",
    "load",
    "faults injected",
    "lost",
    "duplicated",
    "errors",
    "recovery",
    "result",
)


@dataclass
class Row:
    """What one scenario did and found.

    ``lost``, ``duplicated`` and ``errors`` are counts (``None``: not what this scenario
    measures). ``recovery_s`` is the longest time from a fault's end to normal service.
    ``failures`` names each figure that missed its target; an empty list is a pass.
    ``notes`` are extra figures (p50/p99, takeover time, …) printed under the table.
    """

    scenario: str
    load: str
    faults: str
    lost: int | None = None
    duplicated: int | None = None
    errors: int | None = None
    recovery_s: float | None = None
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def require(self, condition: bool, failure: str) -> None:
        """Record ``failure`` unless ``condition`` holds."""
        if not condition:
            self.failures.append(failure)

    def cells(self) -> list[str]:
        def count(value: int | None) -> str:
            return "-" if value is None else str(value)

        recovery = "-" if self.recovery_s is None else f"{self.recovery_s:.1f} s"
        return [
            self.scenario,
            self.load,
            self.faults,
            count(self.lost),
            count(self.duplicated),
            count(self.errors),
            recovery,
            "pass" if self.ok else "FAIL",
        ]


def render(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table (as the README shows it), then each row's notes and
    failures."""
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "| " + " | ".join("---" for _ in COLUMNS) + " |",
    ]
    lines += [
        "| " + " | ".join(cell.replace("|", "/") for cell in row.cells()) + " |" for row in rows
    ]
    for row in rows:
        for note in row.notes:
            lines.append(f"- {row.scenario}: {note}")
        for failure in row.failures:
            lines.append(f"- {row.scenario}: FAILED: {failure}")
    return "\n".join(lines)
