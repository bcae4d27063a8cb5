"""Run every benchmark in bench/, one after another, each in its own process.

    uv run python bench/run.py [NAME ...]

A benchmark is a standalone script ``bench/<name>.py`` with a ``main()`` that prints its
figures beside a floor measured in the same run, and exits non-zero only when something
did not work. Modules whose names start with ``_`` are helpers and are not run. With NAMEs,
only those benchmarks run. Exits non-zero if any benchmark failed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent


def benchmarks() -> list[Path]:
    return sorted(
        path
        for path in BENCH_DIR.glob("*.py")
        if path.name != Path(__file__).name and not path.name.startswith("_")
    )


def run(path: Path) -> int:
    """Run one benchmark; if this runner is stopped, stop it the way it expects (SIGTERM),
    so it can stop the servers it started, rather than killing it outright."""
    process = subprocess.Popen([sys.executable, str(path)], cwd=PROJECT_ROOT)
    try:
        return process.wait()
    except BaseException:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        raise


def main(argv: list[str] | None = None) -> int:
    names = sys.argv[1:] if argv is None else argv
    found = {path.stem: path for path in benchmarks()}
    unknown = [name for name in names if name not in found]
    if unknown:
        print(f"no such benchmark: {', '.join(unknown)} (have: {', '.join(found)})")
        return 2
    chosen = [found[name] for name in names] if names else list(found.values())
    failed: list[str] = []
    for path in chosen:
        print(f"== bench/{path.name}", flush=True)
        started = time.monotonic()
        code = run(path)
        elapsed = time.monotonic() - started
        print(f"== bench/{path.name}: exit {code} in {elapsed:.0f} s\n", flush=True)
        if code != 0:
            failed.append(path.name)
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
