"""run_read: the Core read path of the hot requests keeps run_in_transaction's rules."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import DatabaseSettings, create_engine, create_session_factory, pool_status
from services.errors import OperationTimeout, PoolExhausted
from services.transactions import run_read
from tests.support.backends import postgres_only, sqlite_only

PROMPT_S = 5.0  # generous for a loaded machine


@pytest.fixture
async def one_connection(
    settings: DatabaseSettings, sessions: object
) -> AsyncIterator[AsyncEngine]:
    """A second engine on the test database whose pool holds one connection."""
    engine = create_engine(settings.replace(pool_size=1, max_overflow=0, pool_timeout=0.3))
    yield engine
    await engine.dispose()


def _one(connection: Connection) -> int:
    return int(connection.execute(text("SELECT 1")).scalar_one())


async def test_the_work_s_result_is_returned_and_the_connection_given_back(
    one_connection: AsyncEngine,
) -> None:
    assert await run_read(create_session_factory(one_connection), _one) == 1
    assert pool_status(one_connection).checked_out == 0


@postgres_only
async def test_the_work_runs_in_a_read_only_transaction_on_postgres(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    def write(connection: Connection) -> None:
        connection.execute(text("CREATE TEMPORARY TABLE run_read_probe (x int)"))

    with pytest.raises(DBAPIError, match="read-only"):
        await run_read(sessions, write, attempts=1)


@sqlite_only
async def test_a_read_does_not_wait_for_the_sqlite_write_lock(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with engine.connect() as writer:
        await writer.begin()
        await writer.execute(text("SELECT 1"))  # sends the held-back BEGIN IMMEDIATE
        began = time.perf_counter()
        assert await run_read(sessions, _one) == 1
        assert time.perf_counter() - began < PROMPT_S
        await writer.rollback()


async def test_an_exhausted_pool_raises_pool_exhausted(one_connection: AsyncEngine) -> None:
    async with one_connection.connect():  # the pool's only connection
        with pytest.raises(PoolExhausted):
            await run_read(create_session_factory(one_connection), _one)
    assert pool_status(one_connection).checked_out == 0


async def test_a_deadline_bounds_the_wait_for_a_pooled_connection(
    settings: DatabaseSettings, sessions: object
) -> None:
    engine = create_engine(settings.replace(pool_size=1, max_overflow=0, pool_timeout=60))
    try:
        async with engine.connect():
            began = time.perf_counter()
            with pytest.raises(OperationTimeout) as raised:
                await run_read(create_session_factory(engine), _one, timeout=0.2)
            assert time.perf_counter() - began < PROMPT_S
        assert not isinstance(raised.value, PoolExhausted)
        assert pool_status(engine).checked_out == 0
    finally:
        await engine.dispose()


def _transaction_open(connection: Connection) -> bool:
    """Whether the database itself has a transaction open on this connection now."""
    driver: Any = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        return bool(driver.is_in_transaction())
    return bool(driver._conn.in_transaction)  # aiosqlite's sqlite3 connection


async def test_a_one_statement_read_runs_outside_any_transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    def read(connection: Connection) -> tuple[int, bool]:
        return _one(connection), _transaction_open(connection)

    assert await run_read(sessions, read, one_statement=True) == (1, False)


async def test_a_read_of_several_statements_keeps_one_transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    def read(connection: Connection) -> tuple[int, bool]:
        return _one(connection), _transaction_open(connection)

    assert await run_read(sessions, read) == (1, True)
