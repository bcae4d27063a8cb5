"""The axe results behind the accessibility statement, collected while the browser tests run.

Every axe check in the browser tests goes through ``run_axe``. When
``ALERTSVC_TEST_ACCESSIBILITY_REPORT`` names a file, each check is also recorded there (the whole
file rewritten after each one, so a run that stops part way still leaves what it checked,
and nothing from an earlier run): the axe-core version, the date, the rule tags, and per page
(named by its URL rule, such as ``/manage/<token>``, so links with tokens and ids group) how
many times it was checked and how many violations were found. ``make accessibility-report``
runs the tests with it set to ``alertsvc/legal/accessibility_results.json``, which the
statement at /accessibility renders.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from axe_playwright_python.sync_playwright import Axe
from flask import Flask
from playwright.sync_api import Page
from werkzeug.exceptions import HTTPException, MethodNotAllowed

REPORT_ENV = "ALERTSVC_TEST_ACCESSIBILITY_REPORT"
NOT_FOUND = "(an address with no page: page not found)"

axe = Axe()
_app: Flask | None = None
_pages: dict[str, dict[str, int]] = {}
_rules: set[str] = set()
_version: list[str] = []


def use_app(app: Flask) -> None:
    """The app whose URL map names the pages checked (the live server's)."""
    global _app
    _app = app


def run_axe(page: Page, options: dict[str, Any], *, record: bool = True) -> list[dict[str, Any]]:
    """axe's violations on the page as shown, recorded when the report is asked for
    (``record=False``: a page broken on purpose, which the statement must not count)."""
    response = axe.run(page, options=options).response
    violations = response["violations"]
    target = os.environ.get(REPORT_ENV)
    if target and record:
        write_record(Path(target), page.url, response, options)
    return violations


def path_pattern(url: str) -> str:
    """The URL rule that answers ``url`` (``/manage/<token>``), or ``NOT_FOUND``."""
    path = urlsplit(url).path or "/"
    if _app is None:
        return path
    adapter = _app.url_map.bind("localhost")
    # A form's answer is shown at the address it was posted to, which may take POST only.
    for method in ("GET", "POST"):
        try:
            rule, _ = adapter.match(path, method=method, return_rule=True)
        except MethodNotAllowed:
            continue
        except HTTPException:
            break
        return rule.rule
    return NOT_FOUND


def write_record(target: Path, url: str, response: dict[str, Any], options: dict[str, Any]) -> None:
    entry = _pages.setdefault(path_pattern(url), {"checks": 0, "violations": 0})
    entry["checks"] += 1
    entry["violations"] += len(response["violations"])
    _rules.update(options.get("runOnly", {}).get("values", []))
    _version[:] = [response["testEngine"]["version"]]
    report = {
        "tool": "axe-core",
        "tool_version": _version[0],
        "checked_on": datetime.now(UTC).date().isoformat(),
        "rules": sorted(_rules),
        "pages": [{"path": path, **counts} for path, counts in sorted(_pages.items())],
    }
    target.write_text(json.dumps(report, indent=2) + "\n")
