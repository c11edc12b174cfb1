# Quick start: `make run` builds the warehouse, `make test` runs the tests.
PYTHON_BIN ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# polars' allocator (jemalloc) keeps freed pages for reuse by default. Refreshes return them at
# once, which holds a rebuild of a million release records under 1.5 GB instead of about
# 1.8 GB; small in-process reads get about 10 % slower with it (docs/benchmarks.md).
ALLOCATOR_SETTING ?= dirty_decay_ms:0,muzzy_decay_ms:0
# The instance settings make writes when DAGSTER_HOME has none: telemetry and the sign-up
# dialog off, because this pipeline sends nothing anywhere but CMS downloads.
define DAGSTER_YAML
telemetry:
  enabled: false
nux:
  enabled: false
endef
export DAGSTER_YAML

.PHONY: run test ui bench screenshot clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON_BIN) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; set PYTHON_BIN=python3.11 or newer.")'
	$(PYTHON_BIN) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	@touch $@

$(DAGSTER_HOME)/dagster.yaml:
	@mkdir -p $(DAGSTER_HOME)
	@printf '%s\n' "$$DAGSTER_YAML" > $@

run: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	_RJEM_MALLOC_CONF=$(ALLOCATOR_SETTING) $(PYTHON) -m pipelines.build

test: $(VENV)/.installed
	$(PYTHON) -m pytest

ui: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	_RJEM_MALLOC_CONF=$(ALLOCATOR_SETTING) $(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p $${DAGSTER_PORT:-3000}

bench: $(VENV)/.installed
	$(PYTHON) -m pip install --quiet -e '.[dev,bench]'
	HCPCS_BENCH_ALLOCATOR=$(ALLOCATOR_SETTING) $(PYTHON) bench/run.py

screenshot: $(VENV)/.installed
	$(PYTHON) tools/screenshot_asset_graph.py

clean:
	rm -rf data/warehouse $(DAGSTER_HOME)
