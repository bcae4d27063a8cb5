SHELL := /bin/bash
.DEFAULT_GOAL := help

TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/alertsvc_test
PYTEST_ARGS ?=
UV ?= python3 -m uv

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

.PHONY: install
install: ## Install uv (if missing) and the locked Python packages into .venv
	@scripts/ensure-tools.sh

.PHONY: run
run: export ALERTSVC_ENV ?= development
# Web, worker and scheduler count into one folder that /metrics adds up (Prometheus
# multiprocess mode); emptied at each start, as prometheus_client asks.
run: export PROMETHEUS_MULTIPROC_DIR ?= $(CURDIR)/instance/prometheus
run: install ## Run web, worker and scheduler on SQLite with the file transport (http://127.0.0.1:5000)
	@grep -qs '^ALERTSVC_ENV=' .env || printf '%s\n' \
		'# Written by make run: alertsvc commands run from this checkout use development' \
		'# settings (a random key in instance/secret_key). Delete this file to stop that.' \
		'ALERTSVC_ENV=development' >> .env
	@# Every alertsvc process below counts into this folder: it must exist, and start empty.
	rm -rf "$$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$$PROMETHEUS_MULTIPROC_DIR"
	$(UV) run alertsvc db upgrade
	$(UV) run alertsvc seed-demo
	$(UV) run alertsvc operators dev-admin
	$(UV) run honcho start -f Procfile

.PHONY: test
test: install ## Install test needs (chromium, PostgreSQL) and run the whole suite on SQLite, then PostgreSQL
	@scripts/ensure-test-services.sh
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	@echo "== tests on SQLite"
	$(UV) run pytest -n 2 -m "not scenario" $(PYTEST_ARGS)
	@echo "== tests on PostgreSQL (the browser tests ran above: what they add is the page in Chromium, not the database)"
	ALERTSVC_TEST_DATABASE_URL=$(TEST_DATABASE_URL) $(UV) run pytest -n 2 -m "not scenario" --ignore=tests/browser $(PYTEST_ARGS)
	@echo "== reliability scenarios, short variants (PostgreSQL, one at a time)"
	ALERTSVC_TEST_DATABASE_URL=$(TEST_DATABASE_URL) $(UV) run pytest -p no:xdist -m scenario tests/reliability/test_scenarios.py $(PYTEST_ARGS)

.PHONY: reliability
reliability: install ## Run the fault, load and hostile-input scenarios (PostgreSQL) and print their table
	@scripts/ensure-test-services.sh
	@scripts/ensure-bench-tools.sh
	$(UV) run python -m bench.reliability.run $(SCENARIOS)

.PHONY: audit
# pip-audit asks PyPI's JSON API for each locked package's known vulnerabilities (advisories
# from the PyPA advisory database, OSV). It needs that service, so it is not part of make test.
AUDIT_REQUIREMENTS := instance/audit-requirements.txt
PIP_AUDIT ?= pip-audit==2.10.1
audit: install ## Audit the locked dependencies for known vulnerabilities (pip-audit; asks PyPI)
	@mkdir -p instance
	$(UV) export --frozen --all-groups --no-emit-project --format requirements-txt --output-file $(AUDIT_REQUIREMENTS) >/dev/null
	$(UV) tool run --from $(PIP_AUDIT) pip-audit --requirement $(AUDIT_REQUIREMENTS) --require-hashes --disable-pip --vulnerability-service pypi --progress-spinner off --strict $(AUDIT_ARGS)

.PHONY: test-sqlite
test-sqlite: install ## Run the suite on SQLite only
	$(UV) run pytest -n 2 -m "not scenario" $(PYTEST_ARGS)

.PHONY: lint
lint: install ## Check style with ruff
	$(UV) run ruff check .
	$(UV) run ruff format --check .

.PHONY: format
format: install ## Reformat the code with ruff
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

.PHONY: accessibility-report
# The browser tests check every page with axe; with this variable set they also write what
# they found to the file the accessibility statement (/accessibility) shows. Commit it.
accessibility-report: export ALERTSVC_TEST_ACCESSIBILITY_REPORT = $(CURDIR)/alertsvc/legal/accessibility_results.json
accessibility-report: install ## Run the browser tests and write the accessibility statement's axe results
	@scripts/ensure-test-services.sh
	$(UV) run pytest -p no:xdist tests/browser $(PYTEST_ARGS)

.PHONY: bench
bench: install ## Run the benchmarks in bench/ (PostgreSQL; prints figures beside a floor)
	@scripts/ensure-test-services.sh
	@scripts/ensure-bench-tools.sh
	$(UV) run python bench/run.py

.PHONY: clean
clean: ## Remove the virtualenv, caches and the local instance folder
	rm -rf .venv .pytest_cache .ruff_cache .hypothesis instance
