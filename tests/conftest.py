"""Fixtures: every test that asks for `sessions` runs once on SQLite and once on PostgreSQL.

The schema is built by the Alembic migrations (not create_all), once per backend and run;
each test starts from empty tables.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import DatabaseSettings, create_engine, create_session_factory, migrations
from models import Base
from tests.support.backends import BACKENDS, NewDatabase
from tests.support.databases import (
    IN_CI,
    postgres_database,
    postgres_unreachable_reason,
    sqlite_database,
)
from tests.support.pgbouncer import PGBOUNCER, PgBouncerServer, pooled_settings, through_pooler

# The pgbouncer backend's fixture and its opt-in (deselection) hook; the formation's; the
# guards against a blocked event loop and a coroutine never awaited; which tests share a
# pytest-xdist worker.
pytest_plugins = (
    "tests.support.pgbouncer_plugin",
    "tests.support.formation",
    "tests.support.loop_guards",
    "tests.support.xdist_groups",
)

_postgres_checked: list[str | None] = []


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The engine under test: 'sqlite', 'postgresql', or 'pgbouncer' (PostgreSQL via PgBouncer)."""
    return str(request.param)


@pytest.fixture(scope="session")
async def new_database(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> AsyncIterator[NewDatabase]:
    """A factory of empty databases on the current backend, all removed at the end."""
    pooler: PgBouncerServer | None = None
    if backend == PGBOUNCER:
        pooler = request.getfixturevalue("pgbouncer_server")
    if backend in ("postgresql", PGBOUNCER):
        if not _postgres_checked:
            _postgres_checked.append(await postgres_unreachable_reason())
        reason = _postgres_checked[0]
        if reason is not None:
            if IN_CI:
                pytest.fail(f"CI requires PostgreSQL: {reason}", pytrace=False)
            pytest.skip(reason)
    pooled_base = None if pooler is None else await pooler.require()
    folder: Path = tmp_path_factory.mktemp(f"db-{backend}")
    async with AsyncExitStack() as stack:

        async def make() -> str:
            if backend == "sqlite":
                return sqlite_database(folder)
            url = await stack.enter_async_context(postgres_database())
            return url if pooled_base is None else through_pooler(url, pooled_base)

        yield make


@pytest.fixture(scope="session")
async def database_url(new_database: NewDatabase) -> str:
    """The migrated database shared by the tests of one backend."""
    return await new_database()


@pytest.fixture(scope="session")
async def settings(backend: str, database_url: str) -> DatabaseSettings:
    """Settings for the shared test database."""
    settings = DatabaseSettings(url=database_url, pool_size=5, max_overflow=15, pool_timeout=30)
    return pooled_settings(settings) if backend == PGBOUNCER else settings


@pytest.fixture(scope="session")
async def engine(settings: DatabaseSettings) -> AsyncIterator[AsyncEngine]:
    """The shared engine, with the schema migrated to head."""
    engine = create_engine(settings)
    await migrations.upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A session factory over empty tables."""
    async with engine.begin() as connection:
        tables = list(reversed(Base.metadata.sorted_tables))
        if engine.dialect.name == "postgresql":
            names = ", ".join(t.name for t in tables)
            await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                await connection.execute(delete(table))
    return create_session_factory(engine)
