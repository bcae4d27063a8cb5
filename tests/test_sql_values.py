"""Hand-written SQL takes its status and frequency values from the enums.

The exactly-once statements (digest planning, immediate alerts) insert and compare these
values in raw SQL; a value spelled out there would silently stop matching if the enum were
renamed, and rows would be queued with a status no worker claims.
"""

from __future__ import annotations

import ast
from pathlib import Path

import alertsvc
from alertsvc.models import ArticleSource, EndedReason, Frequency, OutboxStatus, RunStatus

PACKAGE = Path(alertsvc.__file__).parent
ENUMS = (ArticleSource, EndedReason, Frequency, OutboxStatus, RunStatus)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes: prose may quote a value (``ended_reason='erased'``)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def test_no_sql_text_in_alertsvc_spells_out_an_enum_value():
    literals = {f"'{member.value}'": member for enum in ENUMS for member in enum}
    spelled = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in skip
            ):
                spelled += [
                    f"{path.relative_to(PACKAGE)}:{node.lineno}: {literal} ({member!r})"
                    for literal, member in literals.items()
                    if literal in node.value
                ]
    assert spelled == []
