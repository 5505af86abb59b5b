# Customer lifecycle warehouse. `make run` and `make test` work on a fresh machine
# with nothing but Python 3.11 and make: set-up installs uv into .tools/ and the
# locked dependencies into .venv/ (uv sync --frozen).
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
DEMO_CUSTOMERS ?= 2000
DEMO_SEED ?= 42
# The demo data covers 2023-01-01..2025-12-31; evaluate it at its end unless told otherwise.
DEMO_VARS ?= {"as_of_date": "2025-12-31"}
SCALE ?= small
BENCH_ARGS ?=  # e.g. --dir /tmp/bench --skip-lifecycle

export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export GX_ANALYTICS_ENABLED := false
export DAGSTER_DISABLE_TELEMETRY := true

.PHONY: setup browser run test dev bench clean

setup: $(VENV)/.installed

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet uv==$(UV_VERSION)

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --python $(PYTHON)
	$(BIN)/python -c "from orchestration.defs.dbt.project import prepare_manifest; prepare_manifest()"
	touch $@

run: setup
	@landing=$${CLM_LANDING_DIR:-data/landing}; \
	if [ -z "$$(ls -A $$landing 2>/dev/null)" ]; then \
	  $(BIN)/clm demo-data --out $$landing --customers $(DEMO_CUSTOMERS) --seed $(DEMO_SEED); \
	else echo "using existing exports in $$landing"; fi
	CLM_VARS=$${CLM_VARS:-'$(DEMO_VARS)'} $(BIN)/clm run

# The report test opens the page in headless Chromium: Debian's package, installed when missing.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi; }

test: setup browser
	$(BIN)/python -m pytest -q

# The UI's schedule and landing sensor start runs with the vars of this environment: the same
# CLM_VARS as `make run` (the demo's date unless you set your own), never today by surprise.
dev: setup
	mkdir -p $${DAGSTER_HOME:-.dagster_home}
	[ -f $${DAGSTER_HOME:-.dagster_home}/dagster.yaml ] || cp orchestration/dagster.yaml $${DAGSTER_HOME:-.dagster_home}/
	CLM_VARS=$${CLM_VARS:-'$(DEMO_VARS)'} DAGSTER_HOME=$${DAGSTER_HOME:-$(CURDIR)/.dagster_home} \
	  $(BIN)/dagster dev -m orchestration.definitions -h 127.0.0.1 -p 3000

bench: setup
	$(BIN)/python -m tools.bench.pipeline --scale $(SCALE) $(BENCH_ARGS)

clean:
	rm -rf data/landing data/warehouse data/bench dbt_project/target dbt_project/logs .dagster_home
