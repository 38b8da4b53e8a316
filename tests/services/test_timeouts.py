"""Deadlines, cancellation and pool exhaustion: typed errors, nothing left checked out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import DatabaseSettings, create_engine, create_session_factory, pool_status
from models import User
from services.errors import InvalidInput, OperationTimeout, PoolExhausted
from services.transactions import deadline, run_in_transaction
from tests.support.backends import postgres_only, sqlite_only
from tests.support.pgbouncer import through_pgbouncer

pytestmark = through_pgbouncer

# Far longer than any test may take: if cancellation did not stop it, the test would hang.
SQLITE_SLOW_COUNT = (
    "WITH RECURSIVE c(x) AS (SELECT mark_started() UNION ALL SELECT x + 1 FROM c "
    "WHERE x < 1000000000000) SELECT count(*) FROM c"
)
# Bound for "promptly": generous for a loaded machine, tiny next to the slow statements.
PROMPT_S = 5.0


@pytest.fixture
async def small_engine(settings: DatabaseSettings, sessions: object) -> AsyncIterator[AsyncEngine]:
    """A second engine on the test database with a one-connection pool."""
    engine = create_engine(settings.replace(pool_size=1, max_overflow=0, pool_timeout=0.3))
    yield engine
    await engine.dispose()


async def _users(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def _insert_user(session: AsyncSession) -> None:
    session.add(User(email=f"t{time.perf_counter_ns()}@example.com", name="Timeout"))
    await session.flush()


def _slow_sqlite_work(started: asyncio.Event, drivers: list[Any]) -> Any:
    loop = asyncio.get_running_loop()

    def mark_started() -> int:  # runs on aiosqlite's thread
        loop.call_soon_threadsafe(started.set)
        return 1

    async def work(session: AsyncSession) -> None:
        await _insert_user(session)
        raw = await (await session.connection()).get_raw_connection()
        driver: Any = raw.driver_connection  # aiosqlite.Connection
        drivers.append(driver)
        await driver.create_function("mark_started", 0, mark_started)
        await session.execute(text(SQLITE_SLOW_COUNT))

    return work


async def _driver_of_next_transaction(sessions: async_sessionmaker[AsyncSession]) -> Any:
    async def work(session: AsyncSession) -> Any:
        raw = await (await session.connection()).get_raw_connection()
        await session.execute(text("SELECT 1"))
        return raw.driver_connection

    return await run_in_transaction(sessions, work)


@sqlite_only
async def test_a_timed_out_sqlite_statement_is_interrupted_and_its_connection_reused(
    small_engine: AsyncEngine,
) -> None:
    sessions = create_session_factory(small_engine)
    users_before = await _users(sessions)
    started, drivers = asyncio.Event(), list[Any]()
    began = time.perf_counter()
    with pytest.raises(OperationTimeout, match=r"did not finish within 0\.3s"):
        await run_in_transaction(sessions, _slow_sqlite_work(started, drivers), timeout=0.3)
    assert started.is_set()
    assert time.perf_counter() - began < PROMPT_S
    assert pool_status(small_engine).checked_out == 0
    # The pool's only connection comes back and answers at once: its thread is free, so
    # the statement really stopped (aiosqlite would otherwise queue us behind it).
    assert await _driver_of_next_transaction(sessions) is drivers[0]
    assert await _users(sessions) == users_before  # the insert was rolled back


@sqlite_only
async def test_cancelling_a_slow_sqlite_statement_stops_it_and_writes_can_follow(
    small_engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    small = create_session_factory(small_engine)
    started, drivers = asyncio.Event(), list[Any]()
    task = asyncio.create_task(run_in_transaction(small, _slow_sqlite_work(started, drivers)))
    await started.wait()
    cancelled_at = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.perf_counter() - cancelled_at < PROMPT_S
    assert pool_status(small_engine).checked_out == 0
    # The cancelled transaction held the write lock; another engine can write now,
    # without waiting for a garbage collection to release a half-closed connection.
    await run_in_transaction(sessions, _insert_user, timeout=PROMPT_S)


@postgres_only
async def test_a_timed_out_postgres_statement_is_cancelled_on_the_server(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async def work(session: AsyncSession) -> None:
        await _insert_user(session)
        await session.execute(text("SELECT pg_sleep(120) /* ledger-timeout-test */"))

    users_before = await _users(sessions)
    began = time.perf_counter()
    with pytest.raises(OperationTimeout):
        await run_in_transaction(sessions, work, timeout=0.3)
    assert time.perf_counter() - began < PROMPT_S
    assert pool_status(engine).checked_out == 0
    assert await _users(sessions) == users_before

    async def sleeping(session: AsyncSession) -> int:
        count = await session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                "AND query LIKE '%ledger-timeout-test%' AND pid <> pg_backend_pid()"
            )
        )
        return int(count or 0)

    # The server learns of the cancel asynchronously: poll, boundedly, until it is gone.
    for _ in range(100):
        if await run_in_transaction(sessions, sleeping) == 0:
            break
        await asyncio.sleep(0.05)
    assert await run_in_transaction(sessions, sleeping) == 0


async def test_a_timed_out_transaction_rolls_back_and_returns_its_connection(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    never = asyncio.Event()

    async def write_then_wait(session: AsyncSession) -> None:
        await _insert_user(session)
        await never.wait()  # e.g. a slow call to another service inside the transaction

    with pytest.raises(OperationTimeout):
        await run_in_transaction(sessions, write_then_wait, timeout=0.2)
    assert pool_status(engine).checked_out == 0
    assert await _users(sessions) == 0
    await run_in_transaction(sessions, _insert_user)  # the engine stays usable
    assert await _users(sessions) == 1


async def test_a_cancelled_transaction_rolls_back_and_returns_its_connection(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    inside, never = asyncio.Event(), asyncio.Event()

    async def write_then_wait(session: AsyncSession) -> None:
        await _insert_user(session)
        inside.set()
        await never.wait()

    task = asyncio.create_task(run_in_transaction(sessions, write_then_wait))
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool_status(engine).checked_out == 0
    assert await _users(sessions) == 0


async def test_an_exhausted_pool_raises_an_error_naming_the_pool_settings(
    small_engine: AsyncEngine,
) -> None:
    sessions = create_session_factory(small_engine)
    async with small_engine.connect():  # the pool's only connection
        began = time.perf_counter()
        with pytest.raises(PoolExhausted) as raised:
            await run_in_transaction(sessions, _insert_user)
        assert time.perf_counter() - began < PROMPT_S
    message = str(raised.value)
    for setting in ("DB_POOL_SIZE=1", "DB_MAX_OVERFLOW=0", "DB_POOL_TIMEOUT=0.3"):
        assert setting in message
    assert isinstance(raised.value, OperationTimeout)
    await run_in_transaction(sessions, _insert_user)  # usable once a connection is free
    assert pool_status(small_engine).checked_out == 0


async def test_a_deadline_also_bounds_the_wait_for_a_pooled_connection(
    settings: DatabaseSettings, sessions: object
) -> None:
    engine = create_engine(settings.replace(pool_size=1, max_overflow=0, pool_timeout=60))
    try:
        async with engine.connect():
            began = time.perf_counter()
            with pytest.raises(OperationTimeout) as raised:
                await run_in_transaction(create_session_factory(engine), _insert_user, timeout=0.2)
            assert time.perf_counter() - began < PROMPT_S
        assert not isinstance(raised.value, PoolExhausted)
        assert pool_status(engine).checked_out == 0
    finally:
        await engine.dispose()


@postgres_only
async def test_the_postgres_statement_timeout_raises_operation_timeout(
    settings: DatabaseSettings, sessions: object
) -> None:
    engine = create_engine(settings.replace(statement_timeout_ms=50))
    try:

        async def work(session: AsyncSession) -> None:
            await session.execute(text("SELECT pg_sleep(5)"))

        with pytest.raises(OperationTimeout, match="DB_STATEMENT_TIMEOUT_MS"):
            await run_in_transaction(create_session_factory(engine), work)
        assert pool_status(engine).checked_out == 0
    finally:
        await engine.dispose()


async def test_a_deadline_does_not_touch_a_block_that_finishes_in_time() -> None:
    async with deadline(5):
        result = 1
    async with deadline(None):
        result += 1
    assert result == 2


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), True])
async def test_a_deadline_must_be_a_positive_number(seconds: float) -> None:
    with pytest.raises(InvalidInput):
        async with deadline(seconds):
            pass
