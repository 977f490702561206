# Two commands on a fresh machine with only Python 3.11+:
#   make sync   set up .venv and run `aggregator sync` on config.yaml (SQLite, the seeds/ archive)
#   make test   set up .venv with test tools and run every check: format, lint, types, tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: sync test check fmt bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

sync: $(STAMP)
	$(BIN)/aggregator sync

test: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/archive.py
	$(BIN)/python bench/feeds.py

clean:
	rm -rf $(VENV) public aggregator.db aggregator.db-wal aggregator.db-shm
