# freshcast: `make run` runs the daily job on the embedded default; `make test` runs all tests.
SHELL := /bin/bash
# OpenMP threads that spin while waiting stall LightGBM on a busy 2-core machine.
export OMP_WAIT_POLICY ?= PASSIVE
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# This machine keeps a CPU build of torch on disk; use it rather than a multi-GB CUDA download.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

.PHONY: install run test bench lint format browser

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(FIND_LINKS) -e '.[dev]'
	@touch $(STAMP)

# The daily job on the configured data (simulating the default if there is none), then the UI.
run: install
	$(VENV)/bin/freshcast run
	$(VENV)/bin/freshcast ui

# pytest exits 5 when it collects no tests: that is a failure, not a pass.
test: install browser
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

# Headless Chromium for the browser test, from Debian's packages (Playwright's own
# browser download does not work offline). Skipped when chromium is already there.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "warning: could not install chromium"; \
	  else echo "warning: chromium is missing; install Debian's chromium package"; fi; }

# Benchmarks get their own venv: the `bench` extra (mlforecast, pypots) pins older pandas.
BENCH_VENV := .venv-bench
bench:
	@test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q $(FIND_LINKS) -e '.[dev,bench]'
	for script in $$(grep -l '__main__' benchmarks/*.py); do $(BENCH_VENV)/bin/python $$script || exit 1; done

# Style, types (strict on models/ and pipelines/) and the import contracts (pyproject.toml).
lint: install
	$(VENV)/bin/ruff check pipelines models app research tests benchmarks
	$(VENV)/bin/ruff format --check pipelines models app research tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff check --fix pipelines models app research tests benchmarks
	$(VENV)/bin/ruff format pipelines models app research tests benchmarks
