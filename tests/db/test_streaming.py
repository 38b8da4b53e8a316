"""Streamed results (server-side cursors) behave like buffered ones inside a transaction,
on the one-hop SQLite adapter, the stock one (DB_SQLITE_ONE_HOP=false) and PostgreSQL.

Every streaming entry point is run: AsyncConnection.stream(), stream_results through a
sync connection, AsyncSession.stream(), AsyncSession.stream_scalars() and yield_per.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.sql import Executable

from db import DatabaseSettings, create_engine
from db.sqlite_one_hop import DEFERRED
from tests.support.backends import BACKENDS
from tests.support.databases import IN_CI, postgres_database, postgres_unreachable_reason

metadata = MetaData()
counters = Table(
    "stream_counters",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
)

ROWS = 5

TARGETS = [
    *(["sqlite-one-hop", "sqlite-stock"] if "sqlite" in BACKENDS else []),
    *(["postgresql"] if "postgresql" in BACKENDS else []),
]


@pytest.fixture(scope="module", params=TARGETS)
async def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AsyncEngine]:
    """An engine from the project's create_engine, with the counters table."""
    if request.param == "postgresql":
        reason = await postgres_unreachable_reason()
        if reason is not None:
            if IN_CI:
                pytest.fail(f"CI requires PostgreSQL: {reason}", pytrace=False)
            pytest.skip(reason)
        async with postgres_database() as url:
            engine = create_engine(DatabaseSettings(url=url))
            async with engine.begin() as connection:
                await connection.run_sync(metadata.create_all)
            yield engine
            await engine.dispose()
        return
    folder: Path = tmp_path_factory.mktemp("streaming")
    one_hop = request.param == "sqlite-one-hop"
    engine = create_engine(
        DatabaseSettings(url=f"sqlite+aiosqlite:///{folder}/s.db", sqlite_one_hop=one_hop)
    )
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
async def engine(target: AsyncEngine) -> AsyncEngine:
    """The target engine over ROWS counters at zero."""
    async with target.begin() as connection:
        await connection.execute(counters.delete())
        await connection.execute(insert(counters), [{"id": i, "n": 0} for i in range(ROWS)])
    return target


Streamed = Callable[[AsyncConnection, Executable], Awaitable[list[Any]]]


async def _connection_stream(connection: AsyncConnection, statement: Executable) -> list[Any]:
    result = await connection.stream(statement)
    return [tuple(row) async for row in result]


async def _stream_results(connection: AsyncConnection, statement: Executable) -> list[Any]:
    def run(sync: Any) -> list[Any]:
        result = sync.execute(statement, execution_options={"stream_results": True})
        return [tuple(row) for row in result.partitions(2) for row in row]

    return await connection.run_sync(run)


async def _session_stream(connection: AsyncConnection, statement: Executable) -> list[Any]:
    session = AsyncSession(bind=connection)
    result = await session.stream(statement)
    return [tuple(row) async for row in result]


async def _session_stream_scalars(connection: AsyncConnection, statement: Executable) -> list[Any]:
    session = AsyncSession(bind=connection)
    result = await session.stream_scalars(statement)
    return [(value,) async for value in result]


async def _yield_per(connection: AsyncConnection, statement: Executable) -> list[Any]:
    session = AsyncSession(bind=connection)
    result = await session.stream(statement.execution_options(yield_per=2))
    return [tuple(row) async for partition in result.partitions() for row in partition]


ENTRY_POINTS: dict[str, Streamed] = {
    "AsyncConnection.stream": _connection_stream,
    "stream_results": _stream_results,
    "AsyncSession.stream": _session_stream,
    "AsyncSession.stream_scalars": _session_stream_scalars,
    "yield_per": _yield_per,
}
# What exists on SQLite only (its database-wide write lock, its BEGIN statements).
SQLITE_TARGETS = [t for t in TARGETS if t.startswith("sqlite")]
sqlite_targets = pytest.mark.parametrize("target", SQLITE_TARGETS, indirect=True)
entry_points = pytest.mark.parametrize("streamed", ENTRY_POINTS.values(), ids=ENTRY_POINTS.keys())


async def _total(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.sum(counters.c.n)))).scalar_one())


@entry_points
async def test_a_streamed_update_first_in_a_transaction_is_undone_by_rollback(
    engine: AsyncEngine, streamed: Streamed
) -> None:
    bump = update(counters).values(n=counters.c.n + 1).returning(counters.c.id)
    async with engine.connect() as connection:
        transaction = await connection.begin()
        assert sorted(await streamed(connection, bump)) == [(i,) for i in range(ROWS)]
        await transaction.rollback()
    assert await _total(engine) == 0


@entry_points
async def test_a_streamed_update_commits_with_its_transaction(
    engine: AsyncEngine, streamed: Streamed
) -> None:
    bump = update(counters).values(n=counters.c.n + 1).returning(counters.c.id)
    async with engine.begin() as connection:
        await streamed(connection, bump)
    assert await _total(engine) == ROWS


@entry_points
async def test_a_streamed_read_sees_the_transactions_own_deferred_insert(
    engine: AsyncEngine, streamed: Streamed
) -> None:
    async with engine.connect() as connection:
        transaction = await connection.begin()
        await connection.execute(insert(counters).prefix_with(DEFERRED), {"id": 99, "n": 7})
        ids = await streamed(connection, select(counters.c.id).order_by(counters.c.id))
        await transaction.rollback()
    assert ids == [(i,) for i in [*range(ROWS), 99]]


@sqlite_targets
@entry_points
async def test_a_streamed_read_in_a_transaction_holds_sqlites_write_lock(
    engine: AsyncEngine, streamed: Streamed
) -> None:
    # Read-then-write: BEGIN IMMEDIATE must take the lock before the read, or the write
    # fails on the lock upgrade. Another writer therefore waits out its busy timeout.
    other = create_engine(DatabaseSettings(url=str(engine.url), busy_timeout_ms=50))
    try:
        async with engine.connect() as connection:
            transaction = await connection.begin()
            await streamed(connection, select(counters.c.id))
            with pytest.raises(OperationalError, match="database is locked"):
                async with other.begin() as writer:
                    await writer.execute(update(counters).values(n=1))
            await transaction.rollback()
    finally:
        await other.dispose()


@entry_points
async def test_a_partly_read_stream_then_a_write_in_the_same_transaction(
    engine: AsyncEngine, streamed: Streamed
) -> None:
    async with engine.connect() as connection, connection.begin():
        stream = await connection.stream(select(counters.c.id).order_by(counters.c.id))
        first = await stream.fetchmany(2)
        await connection.execute(update(counters).values(n=2).where(counters.c.id == 0))
        rest = await stream.fetchall()
        assert [tuple(r) for r in [*first, *rest]] == [(i,) for i in range(ROWS)]
        await streamed(connection, select(counters.c.n))
    assert await _total(engine) == 2


@sqlite_targets
async def test_a_second_begin_while_the_first_is_not_yet_sent_fails_at_once(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as connection:
        transaction = await connection.begin()  # BEGIN IMMEDIATE (held back on one-hop)
        with pytest.raises(OperationalError, match="within a transaction"):
            await connection.exec_driver_sql("BEGIN DEFERRED")
        await transaction.rollback()


@sqlite_targets
async def test_a_begin_inside_a_running_transaction_fails_at_once(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        transaction = await connection.begin()
        await connection.execute(select(counters.c.id))
        with pytest.raises(OperationalError, match="within a transaction"):
            await connection.exec_driver_sql("BEGIN")
        await transaction.rollback()
