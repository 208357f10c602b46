# The two commands of README.md: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install install-dev system-deps demo ui test lint bench

install:
	$(PIP) install -q -e .

install-dev:
	$(PIP) install -q -e ".[dev]"

system-deps:
	bash scripts/install-system-deps.sh

demo: install
	hub demo

ui: install
	hub ui

test: install-dev system-deps
	$(PYTHON) -m pytest -q -p no:cacheprovider

lint:
	ruff check . && ruff format --check .

bench:
	$(PIP) install -q -e ".[dev,bench]"
	$(PYTHON) -m bench --help
