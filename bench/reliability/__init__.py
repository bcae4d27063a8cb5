"""``make reliability``: bounded fault, load and hostile-input scenarios against real processes.

Each scenario is a module ``bench/reliability/scenario_<name>.py`` with

    NAME: str                      # the table's first column
    def run(short: bool) -> Row    # what it did and found; ``short`` is the make-test variant
    NEEDS_POSTGRESQL: bool         # optional, default True

``run`` starts what it needs (its own databases, sinks, processes), stops all of it before
it returns, however it ends, and prints what it does as it goes. It never asserts: what it
found goes in the ``Row``, and a figure that misses the issue's target goes in
``Row.failures``. ``bench/reliability/run.py`` runs them and prints the table;
``tests/reliability/test_scenarios.py`` runs every short variant inside ``make test``.
"""
