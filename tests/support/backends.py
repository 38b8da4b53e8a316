"""Which engines the suite runs on, and markers for behaviour that exists on one only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

# "pgbouncer" is PostgreSQL through PgBouncer in transaction mode; it runs only the tests
# that opt in (tests/support/pgbouncer.py), the others' pgbouncer items are deselected.
BACKENDS = ("sqlite", "postgresql", "pgbouncer")

# Decorators for behaviour that exists on one engine only.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
postgres_only = pytest.mark.parametrize("backend", ["postgresql", "pgbouncer"], indirect=True)
# PostgreSQL over a direct connection only: session state, LISTEN, startup parameters.
postgres_direct_only = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)

NewDatabase = Callable[[], Awaitable[str]]
