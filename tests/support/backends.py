"""Which engines the suite runs on, and markers for behaviour that exists on one only."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import pytest

# "pgbouncer" is PostgreSQL through PgBouncer in transaction mode; it runs only the tests
# that opt in (tests/support/pgbouncer.py), the others' pgbouncer items are deselected.
ALL_BACKENDS = ("sqlite", "postgresql", "pgbouncer")


def _backends_from_env() -> tuple[str, ...]:
    # TEST_BACKENDS=sqlite runs one engine only: `make test`'s second, stock-adapter run,
    # which changes nothing on PostgreSQL.
    chosen = os.environ.get("TEST_BACKENDS", "").replace(",", " ").split()
    unknown = set(chosen) - set(ALL_BACKENDS)
    if unknown:
        raise pytest.UsageError(f"TEST_BACKENDS names unknown engines: {sorted(unknown)}")
    return tuple(b for b in ALL_BACKENDS if b in chosen) if chosen else ALL_BACKENDS


BACKENDS = _backends_from_env()

# Decorators for behaviour that exists on one engine only (skipped if it is not run).
sqlite_only = pytest.mark.parametrize(
    "backend", [b for b in BACKENDS if b == "sqlite"], indirect=True
)
postgres_only = pytest.mark.parametrize(
    "backend", [b for b in BACKENDS if b in ("postgresql", "pgbouncer")], indirect=True
)
# PostgreSQL over a direct connection only: session state, LISTEN, startup parameters.
postgres_direct_only = pytest.mark.parametrize(
    "backend", [b for b in BACKENDS if b == "postgresql"], indirect=True
)

NewDatabase = Callable[[], Awaitable[str]]
