"""pytest plugin of the pgbouncer backend: its fixture and the opt-in (deselection) hook.

Loaded by tests/conftest.py (`pytest_plugins`); the helpers are in tests/support/pgbouncer.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lab.servers.pgbouncer import (
    HOW_TO_INSTALL,
    PgBouncerError,
    ScratchPgBouncer,
    find_pgbouncer,
    start,
)
from tests.support.databases import POSTGRES_URL
from tests.support.pgbouncer import ENV_URL, PGBOUNCER, PgBouncerServer, pgbouncer_executable


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the `pgbouncer` items of tests that did not opt in."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_pgbouncer = callspec is not None and callspec.params.get("backend") == PGBOUNCER
        opted_in = item.get_closest_marker("through_pgbouncer") is not None
        (dropped if on_pgbouncer and not opted_in else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def pgbouncer_server() -> Iterator[PgBouncerServer]:
    """TEST_PGBOUNCER_URL, or an instance started for this run if pgbouncer is installed.

    A plain (not async) fixture, so that the async `new_database` can ask for it by name.
    """
    configured = os.environ.get(ENV_URL)
    if configured:
        yield PgBouncerServer(configured)
        return
    if find_pgbouncer() is None:
        yield PgBouncerServer(None, HOW_TO_INSTALL)
        return
    try:
        instance = start(POSTGRES_URL)
    except PgBouncerError as exc:
        yield PgBouncerServer(None, str(exc))
        return
    try:
        yield PgBouncerServer(instance.url)
    finally:
        instance.stop()


@pytest.fixture
def start_pgbouncer() -> Iterator[Callable[..., ScratchPgBouncer]]:
    """Start PgBouncer instances of the test's own configuration (lab.servers.pgbouncer.start
    options); all are stopped after the test. Skips (fails in CI) without pgbouncer."""
    pgbouncer_executable()
    started: list[ScratchPgBouncer] = []

    def make(**options: Any) -> ScratchPgBouncer:
        instance = start(POSTGRES_URL, **options)
        started.append(instance)
        return instance

    yield make
    for instance in started:
        instance.stop()
