# Two commands for a newcomer: `make dev` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# uv installs exactly what uv.lock says (versions and hashes) in a few seconds;
# it comes from PyPI itself, pinned and hash-checked in requirements-uv.txt.
TOOLS := .tools
UV := $(TOOLS)/bin/uv
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

# `make dev PORT=8001 SMTP_PORT=2526` when 8000 or 2525 is taken.
PORT ?= 8000
SMTP_PORT ?= 2525

.PHONY: dev test lint typecheck check bench clean serve worker migrate queries schema lock messages

$(UV): requirements-uv.txt
	rm -rf $(TOOLS)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
		--no-deps --require-hashes --target $(TOOLS) -r requirements-uv.txt

$(STAMP): $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --extra dev --quiet || { $(UV) lock --check --quiet 2>/dev/null \
		|| echo "uv.lock is older than pyproject.toml: run 'make lock' and commit uv.lock" >&2; exit 1; }
	touch $(STAMP)

## Run everything locally: embedded PostgreSQL, capture SMTP, web and worker.
dev: $(STAMP)
	$(BIN)/newsletter dev --port $(PORT) --smtp-port $(SMTP_PORT)

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

## After adding or changing a dependency in pyproject.toml: re-resolve uv.lock (commit it).
lock: $(UV)
	$(UV) lock

## After adding or renaming a query in sql/queries/: regenerate the names mypy checks.
queries: $(STAMP)
	$(BIN)/python -m newsletter.core.sqlfiles

## After adding a migration: regenerate sql/schema.sql (every table in one file).
schema: $(STAMP)
	$(BIN)/python -m newsletter.dev.schema

## After changing residents' wording: add new messages to the catalogs (then translate them).
## The .po files are compiled in memory at start-up; no .mo is built or committed.
messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg --no-location --omit-header --sort-output -o .messages.pot .
	$(BIN)/pybabel update -i .messages.pot -d newsletter/locale --no-fuzzy-matching --ignore-pot-creation-date --width 100
	rm -f .messages.pot

bench: $(STAMP)
	$(BIN)/python bench/signup.py

clean:
	rm -rf $(VENV) $(TOOLS) .dev .mypy_cache .pytest_cache .ruff_cache
