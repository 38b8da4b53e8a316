# Two entry points on a fresh machine: `make demo` and `make test`. Both create .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint format install clean

# setuptools tells of every editable install with a package-dir mapping (alembic/ is
# db.migration_scripts) in a BuildBackendWarning, "Editable installation"; it is no fault.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	PYTHONWARNINGS='ignore:Editable installation' $(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ledgerctl migrate
	$(BIN)/ledgerctl demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Two pytest-xdist workers: much of the suite waits (on the databases, on the servers and
# processes it starts), and a second session fills those waits. Each worker has its own
# databases; tests/support/xdist_groups.py keeps a module's tests on one worker and the tests
# of one shared server (RabbitMQ, the formation) together. PYTEST_WORKERS=0 runs in-process.
PYTEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile
# The second run repeats on SQLAlchemy's stock aiosqlite adapter, which is what a deployment
# gets with DB_SQLITE_ONE_HOP=false or outside the adapter's tested library versions, the
# folders where that adapter behaves differently from db/sqlite_one_hop.py: transactions and
# their BEGIN, statements held back, streaming and cursors (db, repositories), and everything
# built on them, concurrency, batches, the worker and cancellation, crashes and faults
# (services, reliability). The other folders reach SQLite only through those services (the
# API, the CLI, events, the tools) or run on PostgreSQL only (ha), which the adapter does not
# touch. A new test in one of these folders joins the second run by where it lives.
STOCK_ADAPTER_TESTS := tests/db tests/repositories tests/services tests/reliability
test: lint
	$(PYTEST)
	DB_SQLITE_ONE_HOP=false TEST_BACKENDS=sqlite $(PYTEST) $(STOCK_ADAPTER_TESTS)

# The formatter first: it wraps long lines, which `ruff check --fix` can only report (E501).
format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The OpenAPI document of the HTTP API, checked in; tests/api compares the app with it.
.PHONY: openapi
openapi: $(STAMP)
	$(BIN)/python -c 'import sys; from api.openapi import render; sys.stdout.write(render())' > docs/openapi.json

clean:
	rm -rf $(VENV) ledger.db ledger.db-wal ledger.db-shm .pytest_cache .mypy_cache .ruff_cache

# The lab (lab/): tools of the repository that a service grown from it does not need.
# Benchmark: `make bench BENCH_ARGS=--quick`, or `python -m lab.bench --help` for every option.
BENCH_ARGS ?=
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python -m lab.bench $(BENCH_ARGS)

# Soak: a mixed load on each engine for SOAK_SECONDS (default 30) each, then a verdict on
# money, connections and memory; e.g. `make soak SOAK_SECONDS=600 SOAK_ARGS=--engines=sqlite`.
# Not part of `make test`, which runs its short form (tests/lab/test_soak.py).
SOAK_SECONDS ?= 30
SOAK_ARGS ?=
.PHONY: soak
soak: $(STAMP)
	$(BIN)/python -m lab.reliability --seconds $(SOAK_SECONDS) $(SOAK_ARGS)

# A new service from this repository, without the lab (docs/new-service.md), e.g.
# `make new-service DEST=../payments`; NEW_SERVICE_ARGS=--check then runs its lint and tests.
NEW_SERVICE_ARGS ?=
.PHONY: new-service
new-service: $(STAMP)
	$(BIN)/python -m lab.new_service $(DEST) $(NEW_SERVICE_ARGS)

# Mutation testing of the transfer core (services/transfer_core.py, repositories/accounts.py)
# against its SQLite tests, in a throw-away copy of the repository; not part of `make test`.
MUTATION_TIMEOUT ?= 60
.PHONY: mutation
mutation: $(STAMP)
	$(BIN)/python -m lab.reliability.mutation --timeout $(MUTATION_TIMEOUT)

# The template's promise to people who grow their app in it: in a temporary copy, add a
# Merchant model, autogenerate its migration, add a repository, a service and a test, then
# `make lint` and their tests on both engines (tests/support/scripted_extension.py).
# tests/db/test_scripted_extension.py runs the same in `make test`;
# EXTENSION_ARGS=--whole-suite runs every test in the extended copy.
EXTENSION_ARGS ?=
.PHONY: check-extension
check-extension: $(STAMP)
	$(BIN)/python -m tests.support.scripted_extension $(EXTENSION_ARGS)
