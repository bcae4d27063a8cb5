"""Run the reliability scenarios and print one table.

    uv run python -m bench.reliability.run [--short] [NAME ...]

NAMEs are module suffixes (``scenario_<NAME>.py``); without them every scenario runs, one
after another. Exits 1 if any scenario failed or missed a target, 2 on an unknown name.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

from bench.reliability.table import Row, render

HERE = Path(__file__).resolve().parent


def scenario_names() -> list[str]:
    return sorted(path.stem.removeprefix("scenario_") for path in HERE.glob("scenario_*.py"))


def load(name: str) -> ModuleType:
    return importlib.import_module(f"bench.reliability.scenario_{name}")


def run_one(name: str, *, short: bool) -> Row:
    """Run one scenario; one that raises is a failed row, never the end of the table."""
    module = load(name)
    print(f"== {name}{' (short)' if short else ''}", flush=True)
    started = time.monotonic()
    try:
        row = module.run(short=short)
    # SystemExit too: bench/_support's helpers exit when a server they start never answers,
    # and that is one failed row, not the end of the table.
    except (Exception, SystemExit) as error:
        traceback.print_exc()
        row = Row(scenario=getattr(module, "NAME", name), load="-", faults="-")
        row.failures.append(f"the scenario itself failed: {type(error).__name__}: {error}")
    print(
        f"== {name}: {'pass' if row.ok else 'FAIL'} in {time.monotonic() - started:.0f} s",
        flush=True,
    )
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the short variants make test runs")
    parser.add_argument("names", nargs="*")
    options = parser.parse_args(argv)
    known = scenario_names()
    unknown = [name for name in options.names if name not in known]
    if unknown:
        print(f"no such scenario: {', '.join(unknown)} (have: {', '.join(known)})")
        return 2
    rows = [run_one(name, short=options.short) for name in options.names or known]
    print()
    print(render(rows))
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
