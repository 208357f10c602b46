# The two commands of README.md: `make demo` and `make test`. Each builds the project's own
# virtual environment (.venv/) from uv.lock first; nothing is installed into the system Python.
PYTHON ?= python3
# uv itself lives in a small venv of its own (.tools/), pinned here and nowhere else.
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PROJECT_ENVIRONMENT := $(VENV)
# uv would otherwise prefer a Python it downloaded; the machine's python3 is the one tested.
export UV_PYTHON := $(PYTHON)
PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider

.PHONY: venv venv-dev demo ui test lint lock lock-check test-latest bench system-deps clean-venv

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q "uv==$(UV_VERSION)"

# Runtime only (demo, UI). --inexact keeps the test extras if a test venv is already there.
venv: $(UV)
	$(UV) sync --frozen --inexact --quiet

# Runtime + every extra (dev, bench, celery, k8s): everything the suite imports.
venv-dev: $(UV)
	$(UV) sync --frozen --all-extras --quiet

system-deps:
	bash scripts/install-system-deps.sh

demo: venv
	$(BIN)/hub demo

ui: venv
	$(BIN)/hub ui

test: venv-dev system-deps
	$(PYTEST)

lint: venv-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# Regenerate uv.lock after a change to pyproject.toml (keeps pins that still fit; add
# --upgrade by hand to move everything to the newest releases).
lock: $(UV)
	$(UV) lock

# Fails when pyproject.toml and uv.lock disagree.
lock-check: $(UV)
	$(UV) lock --check

# The suite against the newest release of every dependency, resolved without the lock,
# in a throwaway venv.
LATEST_VENV := $(or $(TMPDIR),/tmp)/hub-latest-venv
test-latest: $(UV) system-deps
	rm -rf $(LATEST_VENV)
	$(UV) venv --quiet $(LATEST_VENV)
	VIRTUAL_ENV=$(LATEST_VENV) $(UV) pip install --quiet --upgrade --resolution highest \
		-e ".[dev,bench,celery,k8s]"
	VIRTUAL_ENV=$(LATEST_VENV) $(UV) pip list --quiet 2>/dev/null | grep -iE '^(dagster|pandas|numpy|sqlalchemy|pydantic|starlette|uvicorn) '
	$(LATEST_VENV)/bin/python -m pytest -q -p no:cacheprovider

bench: venv-dev
	$(BIN)/python -m bench --help

clean-venv:
	rm -rf $(VENV) $(TOOLS)
