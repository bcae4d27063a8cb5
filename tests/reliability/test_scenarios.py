"""The short variant of every ``make reliability`` scenario, against real processes.

Each scenario reports what it found rather than asserting; this test fails with the
scenario's own account of every figure that missed its target. ``make test`` runs them
after the parallel passes, one at a time on PostgreSQL: each starts a fleet of processes and
measures it, which a test running beside it on the same two cores would distort.
"""

from __future__ import annotations

import os

import pytest

from bench.reliability.run import load, run_one, scenario_names

ON_POSTGRESQL = os.environ.get("ALERTSVC_TEST_DATABASE_URL", "").startswith("postgresql")


@pytest.mark.slow
@pytest.mark.scenario
@pytest.mark.parametrize("name", scenario_names())
def test_the_short_scenario_meets_its_figures(name: str) -> None:
    if getattr(load(name), "NEEDS_POSTGRESQL", True) and not ON_POSTGRESQL:
        pytest.skip("runs in the PostgreSQL pass")
    row = run_one(name, short=True)
    assert row.ok, "\n".join(row.failures)
