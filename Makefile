# Two commands for a newcomer: `make dev` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint typecheck check bench clean serve worker migrate queries

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Run everything locally: embedded PostgreSQL, capture SMTP, web and worker.
dev: $(STAMP)
	$(BIN)/newsletter dev

## The whole test suite plus lints (real PostgreSQL, real SMTP).
test: $(STAMP) lint typecheck
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check newsletter tests bench
	$(BIN)/ruff format --check newsletter tests bench
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

typecheck: $(STAMP)
	$(BIN)/mypy

serve worker migrate: $(STAMP)
	$(BIN)/newsletter $@

## After adding or renaming a query in sql/queries/: regenerate the names mypy checks.
queries: $(STAMP)
	$(BIN)/python -m newsletter.core.sqlfiles

bench: $(STAMP)
	$(BIN)/python bench/signup.py

clean:
	rm -rf $(VENV) .dev .mypy_cache .pytest_cache .ruff_cache
