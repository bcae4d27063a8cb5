"""The capability packages form no import cycle (DESIGN.md: "no two capability packages
import each other"). Read from the source with ``ast``, so imports inside functions count."""

from __future__ import annotations

import ast
from pathlib import Path

import alertsvc

ROOT = Path(alertsvc.__file__).parent
# Shared pieces every capability may use; they import no capability.
SHARED = {"models", "static"}


def capability_packages() -> set[str]:
    return {
        path.parent.name for path in ROOT.glob("*/__init__.py") if path.parent.name not in SHARED
    }


def imported_packages(path: Path, packages: set[str]) -> set[str]:
    """The capability packages the module at ``path`` imports, anywhere in it."""
    own = path.relative_to(ROOT).parts
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(("alertsvc", *own[: len(own) - node.level]))
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names = [module] + [f"{module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if len(parts) > 1 and parts[0] == "alertsvc" and parts[1] in packages:
                found.add(parts[1])
    return found


def package_imports() -> dict[str, set[str]]:
    packages = capability_packages()
    graph: dict[str, set[str]] = {package: set() for package in packages}
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            graph[package] |= imported_packages(path, packages) - {package}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (``a -> b -> a``), or None."""
    done: set[str] = set()

    def visit(package: str, path: list[str]) -> list[str] | None:
        if package in path:
            return [*path[path.index(package) :], package]
        if package in done:
            return None
        for imported in sorted(graph[package]):
            cycle = visit(imported, [*path, package])
            if cycle:
                return cycle
        done.add(package)
        return None

    for package in sorted(graph):
        cycle = visit(package, [])
        if cycle:
            return cycle
    return None


def test_the_checker_sees_the_capability_packages_and_their_imports():
    graph = package_imports()
    assert {"api", "articles", "digests", "delivery", "subscriptions", "topics"} <= graph.keys()
    assert "topics" in graph["articles"], "articles use topic rules"
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_two_capability_packages_import_each_other():
    cycle = find_cycle(package_imports())
    assert cycle is None, "import cycle between capability packages: " + " -> ".join(cycle)
