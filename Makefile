# Set-up and everyday commands. Needs only Python 3.11, pip and make: uv is installed into
# .tools/ when it is not already on PATH, and everything else comes from requirements-dev.lock
# (the platform, its tests and benchmarks; the production image installs requirements.lock).
SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.13.9
VENV := .venv
BIN := $(VENV)/bin
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export PKPI_DATA_DIR ?= $(CURDIR)/data
export PKPI_REFERENCE_DIR ?= $(CURDIR)/seeds
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export NO_COLOR := 1
export GX_ANALYTICS_ENABLED := False
DEMO_LOGICAL_DATE ?= 2026-04-20

.PHONY: setup demo test soak bench lock docs clean airflow-init screenshots
setup: $(VENV)/.installed

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Bytecode is compiled once here, for the locked packages and for the project's own modules (an
# editable install compiles nothing, and with PYTHONDONTWRITEBYTECODE set every command would
# compile them again at start-up).
$(VENV)/.installed: requirements-dev.lock pyproject.toml | $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	$(UV) pip sync --quiet --compile-bytecode --python $(BIN)/python requirements-dev.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m compileall -q include dags
	touch $@

# Re-resolve the pinned versions after changing dependencies in pyproject.toml. requirements.lock
# is what production runs (the image); requirements-dev.lock adds the tests and benchmarks, held
# to the same versions by -c, so what is tested is what is shipped.
lock: | $(UV)
	$(UV) pip compile pyproject.toml --extra production --python-version 3.11 --universal -o requirements.lock
	$(UV) pip compile pyproject.toml --extra test --extra bench -c requirements.lock --python-version 3.11 --universal -o requirements-dev.lock

airflow-init: setup
	@mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (cat $(AIRFLOW_HOME)/db-migrate.log; exit 1)
	$(BIN)/airflow pools set duckdb_writer 1 "DuckDB warehouse writers (ingest, build, delivery ledger): one at a time" \
	  >> $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (cat $(AIRFLOW_HOME)/db-migrate.log; exit 1)

# Writes the synthetic sample returns, then runs one monthly cycle through Airflow: `airflow dags
# test`, its output in demo-run.log, a line as each task starts and ends (pkpi.airflow.dags_test).
demo: airflow-init
	$(BIN)/pkpi demo --returns-only
	$(BIN)/python -m pkpi.airflow.dags_test partnership_monthly $(DEMO_LOGICAL_DATE) --log $(AIRFLOW_HOME)/demo-run.log
	$(BIN)/pkpi demo --summary

# Three workers on CI's two cores: the stack test (tests/test_stack.py) holds one for its whole
# run while mostly waiting on containers, whose work the other two share the cores with. A test
# file's tests stay on one worker, so its module fixtures (a dbt build, one ingest run of a whole
# corpus) are built once. Files start in collection order, the slowest first (SLOW_FILES in
# tests/conftest.py), not xdist's most-tests-first.
PYTEST_WORKERS ?= 3
test: setup
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

# The long crash series (issue 11): hundreds of random kill -9 of real `pkpi ingest` processes
# and a few killed builds, each followed by recovery and the invariants of tests/support/crash.py.
# A failure names its seed; replay it with PKPI_SOAK_SEED=<seed> SOAK_ITERATIONS=1 make soak.
SOAK_ITERATIONS ?= 300
soak: setup
	PKPI_SOAK_ITERATIONS=$(SOAK_ITERATIONS) $(BIN)/python -m pytest tests/test_crash_random.py -m soak -p no:cacheprovider -q

# The national-scale benchmark (issue 13; benchmarks/README.md, docs/performance.md): at the default
# 153 partnerships, 1 and 10 years, hours (mostly the real year's ingest), on a quiet machine. Never
# part of `make test`. BENCH_ARGS="--partnerships 10 --years 1 2 --gate-rows 50000" for a quick look;
# BENCH_ARGS="--root /tmp/bench --keep" reuses the ingested year on the next run.
BENCH_ARGS ?=
bench: setup
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

docs: setup
	$(BIN)/pkpi docs

clean:
	rm -rf data .airflow dbt_project/target dbt_project/logs dbt_project/dbt_packages

# Screenshots of the demo scorecard for the docs (needs a Chromium; not part of `make test`).
CHROMIUM ?= $(shell command -v chromium || command -v chromium-browser || command -v google-chrome)
SCREENSHOT_FLAGS := --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync
screenshots:
	@test -n "$(CHROMIUM)" || (echo "No Chromium found: set CHROMIUM=/path/to/chromium"; exit 1)
	@test -f $(PKPI_DATA_DIR)/exports/2026-03/scorecard.html || (echo "Run make demo first."; exit 1)
	$(CHROMIUM) $(SCREENSHOT_FLAGS) --user-data-dir=$$(mktemp -d) --window-size=390,2400 \
	  --screenshot=$(CURDIR)/docs/images/scorecard-phone.png file://$(PKPI_DATA_DIR)/exports/2026-03/scorecard.html
	$(CHROMIUM) $(SCREENSHOT_FLAGS) --user-data-dir=$$(mktemp -d) --window-size=1100,1500 \
	  --screenshot=$(CURDIR)/docs/images/scorecard-desktop.png file://$(PKPI_DATA_DIR)/exports/2026-03/scorecard.html
