"""Which engines the suite runs on, and markers for behaviour that exists on one only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

BACKENDS = ("sqlite", "postgresql")

# Decorators for behaviour that exists on one engine only.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
postgres_only = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)

NewDatabase = Callable[[], Awaitable[str]]
