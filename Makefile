# Two entry points on a fresh machine: `make demo` and `make test`. Both create .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint format install clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ledgerctl migrate
	$(BIN)/ledgerctl demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) ledger.db ledger.db-wal ledger.db-shm .pytest_cache .mypy_cache .ruff_cache

# Soak: a mixed load on each engine for SOAK_SECONDS (default 30) each, then a verdict on
# money, connections and memory; e.g. `make soak SOAK_SECONDS=600 SOAK_ARGS=--engines=sqlite`.
# Not part of `make test`, which runs its short form (tests/reliability/test_soak.py).
SOAK_SECONDS ?= 30
SOAK_ARGS ?=
.PHONY: soak
soak: $(STAMP)
	$(BIN)/python -m reliability --seconds $(SOAK_SECONDS) $(SOAK_ARGS)

# Mutation testing of the transfer core (services/transfer_core.py, repositories/accounts.py)
# against its SQLite tests, in a throw-away copy of the repository; not part of `make test`.
MUTATION_TIMEOUT ?= 60
.PHONY: mutation
mutation: $(STAMP)
	$(BIN)/python -m reliability.mutation --timeout $(MUTATION_TIMEOUT)
