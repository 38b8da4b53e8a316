"""The pg_auto_failover formation as a fixture (lab/servers/formation.py), shared by the
high-availability tests of a run: one monitor and two nodes, started once (about 20 s),
migrated once, stopped (by pid) at the end.

Without pg_auto_failover the tests skip, saying how to install it; with CI=true they fail.
Each test starts from a healthy formation (`formation` waits until primary/secondary,
whatever the previous test killed) and from empty tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NoReturn

import pytest
from sqlalchemy import text

from db import DatabaseSettings, create_engine, migrations
from lab.servers.formation import (
    HOW_TO_INSTALL,
    Formation,
    FormationError,
    find_pg_autoctl,
    start,
)
from models import Base
from tests.support.backends import BACKENDS
from tests.support.databases import IN_CI


def _unavailable(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"CI requires pg_auto_failover: {reason}", pytrace=False)
    pytest.skip(f"{reason}; the high-availability tests are off")


@pytest.fixture(scope="session")
def running_formation() -> Iterator[Formation]:
    """The run's formation, started on first use."""
    if "postgresql" not in BACKENDS:
        pytest.skip("the PostgreSQL backend is not selected (TEST_BACKENDS)")
    if find_pg_autoctl() is None:
        _unavailable(HOW_TO_INSTALL)
    try:
        formation = start()
    except FormationError as exc:
        _unavailable(str(exc))
    try:
        yield formation
    finally:
        formation.stop()


@pytest.fixture(scope="session")
async def migrated_formation(running_formation: Formation) -> Formation:
    """The formation with the ledger schema at head."""
    engine = create_engine(DatabaseSettings(url=running_formation.url(), pool_size=1))
    try:
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()
    return running_formation


@pytest.fixture
async def formation(migrated_formation: Formation) -> Formation:
    """A healthy formation (primary + secondary) over empty tables."""
    migrated_formation.wait_healthy()
    engine = create_engine(DatabaseSettings(url=migrated_formation.url(), pool_size=1))
    try:
        async with engine.begin() as connection:
            names = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
            await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()
    return migrated_formation
