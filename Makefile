# Two commands on a fresh machine: `make up` and `make test`.
# `make up PORT=9090` serves the engine API on another port (passed as `caxton up --port`).
# Each creates .venv when missing and installs what it needs (re-installs when pyproject.toml changes).
# `make test` runs the suite on one pytest-xdist worker per CPU, a test file per worker at a time (module-scoped
# engines stay shared within their file); `make test WORKERS=1` runs it on one worker.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
WORKERS ?= auto

.PHONY: install up test lint typecheck layers bench schemas screenshots clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[engine,postgres,dev]'
	@touch $(STAMP)

install: $(STAMP)

up: install
	$(VENV)/bin/caxton up $(if $(PORT),--port $(PORT))

typecheck: install
	$(PY) -m mypy

layers: install
	$(VENV)/bin/lint-imports

lint: typecheck layers

test: install lint
	$(PY) -m pytest -q -n $(WORKERS) --dist loadfile

# The console's pages at 1280x800 and 390x844 (tests/ui, Debian's chromium) into docs/screenshots/.
screenshots: install
	CAXTON_SCREENSHOTS=docs/screenshots $(PY) -m pytest -q tests/ui/test_console.py

schemas: install
	$(VENV)/bin/caxton schema export schemas

bench: install
	$(PY) benchmarks/validate_bench.py

clean:
	rm -rf $(VENV) .caxton .pytest_cache .mypy_cache
