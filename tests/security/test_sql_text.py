"""SQL is built from SQLAlchemy expressions and bound parameters, never by formatting values
into its text.

The scan reads every module of the package (ast) for a string built by an f-string, ``%``,
``.format()`` or ``+`` that reaches ``text()``, ``exec_driver_sql()`` or ``execute()``,
directly or through a local name. A value formatted into SQL is an injection the day it
comes from a request; a bound parameter never is. The few statements that must format
their text do so with identifiers and fragments of the code's own choosing, never a value:
each is listed in ``AUDITED`` with why, and the test fails on any other, and on an audited
one that is no longer there (so the list cannot silently outlive the code).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import alertsvc

PACKAGE = Path(alertsvc.__file__).parent
SQL_CALLS = frozenset({"text", "exec_driver_sql", "execute"})

# (module, function) -> (why formatting its SQL text is safe, exactly what it formats in).
# Each piece is a name or a fragment the code picks from its own literals (a table name, a
# column, a dialect's spelling of a function); every value in these statements is bound.
DIALECT = "the dialect's spelling (string_agg or group_concat, a JSON cast, epoch text)"
AUDITED: dict[tuple[str, str], tuple[str, set[str]]] = {
    ("alertsvc/database.py", "create"): (
        "names and column definitions of the planners' working tables, constants in code",
        {"name", "columns"},
    ),
    ("alertsvc/database.py", "drop"): ("the same working tables' names", {"name"}),
    ("alertsvc/digests/alerts.py", "_queue_alerts"): (
        f"{DIALECT}; the daily cap's conditions, literals naming bound :cap",
        {
            "as_json(connection, \"'{}'\")",
            "as_json(connection, 'topic_ids')",
            "over_cap",
            "reaches_cap",
            "sent_today",
            "topic_ids",
        },
    ),
    ("alertsvc/digests/planning.py", "_add_held_back_alerts"): (
        f"a subquery of literals with {DIALECT}",
        {"held"},
    ),
    ("alertsvc/digests/planning.py", "build_audience"): (
        f"the run's hour and weekday columns (chosen by frequency); {DIALECT}",
        {
            "aggregate",
            "hour",
            "positioned.format(only='')",
            "positioned.format(only='AND sub.carried_position = :true')",
            "self._timestamp_text('start')",
            "weekday",
        },
    ),
    ("alertsvc/digests/planning.py", "write"): (
        f"a literal range condition and per-kind UPDATE literals; {DIALECT}",
        {
            "as_json(self.connection, \"'{}'\")",
            "as_json(self.connection, 'p.topic_ids')",
            "chosen",
            "moves[kind]",
        },
    ),
}


def _formatted(node: ast.expr) -> bool:
    """Whether ``node`` builds a string at run time from something other than literals."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(part, ast.FormattedValue) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return not (_literal(node.left) and _literal(node.right))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("format", "join", "replace")
    ):
        # psycopg's ``sql.SQL("LISTEN {}").format(sql.Identifier(...))`` quotes what it
        # composes: the driver's own safe way to put an identifier in a statement.
        composed = isinstance(node.func.value, ast.Call) and _call_name(node.func.value) == "SQL"
        return not composed
    return False


def _literal(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.BinOp):
        return _literal(node.left) and _literal(node.right)
    return isinstance(node, ast.JoinedStr) and not _formatted(node)


def _call_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """``ast.walk`` of one scope: nested functions are scopes of their own."""
    yield node
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, FUNCTIONS):
            yield from _walk(child)


def _scopes(tree: ast.Module) -> Iterator[tuple[str, ast.AST]]:
    """The module's own statements, then each function (by name), each on its own."""
    yield "<module>", tree
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name, node


def _pieces(node: ast.expr) -> set[str]:
    """What is formatted into ``node``'s text, as source (``{topic_ids}`` -> ``topic_ids``)."""
    return {
        ast.unparse(part.value) if isinstance(part, ast.FormattedValue) else ast.unparse(part)
        for part in ast.walk(node)
        if isinstance(part, ast.FormattedValue)
        or (isinstance(part, ast.BinOp) and not _literal(part))
    }


def formatted_sql(source: str) -> dict[str, set[str]]:
    """Scopes (function names, ``<module>``) that pass formatted text to SQL, each with
    what they format into it."""
    found: dict[str, set[str]] = {}
    for scope, node in _scopes(ast.parse(source)):
        assigned: dict[str, list[ast.expr]] = {}
        for statement in _walk(node):
            if isinstance(statement, ast.Assign | ast.AugAssign | ast.AnnAssign):
                targets = (
                    statement.targets if isinstance(statement, ast.Assign) else [statement.target]
                )
                for target in targets:
                    if isinstance(target, ast.Name) and statement.value is not None:
                        assigned.setdefault(target.id, []).append(statement.value)
        built = {
            target.id
            for statement in _walk(node)
            if isinstance(statement, ast.Assign | ast.AugAssign | ast.AnnAssign)
            and statement.value is not None
            and (_formatted(statement.value) or isinstance(statement, ast.AugAssign))
            for target in (
                statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            )
            if isinstance(target, ast.Name)
        }
        for call in _walk(node):
            if not isinstance(call, ast.Call) or _call_name(call) not in SQL_CALLS:
                continue
            if not call.args:
                continue
            first = call.args[0]
            if _formatted(first):
                found.setdefault(scope, set()).update(_pieces(first))
            elif isinstance(first, ast.Name) and first.id in built:
                for value in assigned.get(first.id, []):
                    found.setdefault(scope, set()).update(_pieces(value) or {first.id})
    return found


def _scan() -> dict[tuple[str, str], set[str]]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE.parent).as_posix()
        for scope, pieces in formatted_sql(path.read_text(encoding="utf-8")).items():
            found[(module, scope)] = pieces
    return found


def test_no_sql_is_built_by_formatting_values_into_its_text():
    found = _scan()
    unaudited = {place: found[place] for place in found.keys() - AUDITED.keys()}
    assert unaudited == {}, "SQL text built by formatting: bind the values"
    assert AUDITED.keys() - found.keys() == set(), "audited exceptions no longer in the code"
    for place, (_, pieces) in AUDITED.items():
        assert found[place] == pieces, f"{place} formats something new into its SQL"


@pytest.mark.parametrize(
    "source",
    [
        "db.session.execute(text(f\"SELECT * FROM subscribers WHERE email = '{email}'\"))",
        "connection.exec_driver_sql(\"DELETE FROM topics WHERE slug = '%s'\" % slug)",
        'db.session.execute(text("SELECT {} FROM topics".format(column)))',
        'sql = "SELECT * FROM feeds WHERE url = \'" + url + "\'"\nconnection.execute(text(sql))',
        'def f(q):\n    sql = f"SELECT {q}"\n    return db.session.execute(text(sql))',
    ],
)
def test_the_scan_sees_each_way_of_formatting(source):
    assert formatted_sql(source)


@pytest.mark.parametrize(
    "source",
    [
        'db.session.execute(text("SELECT * FROM topics WHERE slug = :slug"), {"slug": slug})',
        'sql = """SELECT 1"""\ndb.session.execute(text(sql))',
        'cursor.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))',
        "db.session.execute(select(Topic).where(Topic.slug == slug))",
    ],
)
def test_the_scan_lets_bound_parameters_and_expressions_be(source):
    assert formatted_sql(source) == {}
