"""The engine: SQLite connection setup, BEGIN IMMEDIATE, pool status, disposal."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from db import SQLITE_BEGIN_OPTION, DatabaseSettings, create_engine, engine_settings, pool_status
from tests.support.backends import postgres_only, sqlite_only
from tests.support.paths import PROJECT_ROOT


@sqlite_only
async def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(
    engine: AsyncEngine, settings: DatabaseSettings
) -> None:
    async with engine.connect() as connection:
        pragmas = {
            name: (await connection.execute(text(f"PRAGMA {name}"))).scalar_one()
            for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")
        }
    assert pragmas == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "synchronous": 1,  # NORMAL
        "busy_timeout": settings.busy_timeout_ms,
    }


@postgres_only
async def test_postgres_connections_carry_statement_and_lock_timeouts(
    engine: AsyncEngine, settings: DatabaseSettings
) -> None:
    async with engine.connect() as connection:
        statement = (await connection.execute(text("SHOW statement_timeout"))).scalar_one()
        lock = (await connection.execute(text("SHOW lock_timeout"))).scalar_one()
    assert statement == f"{settings.statement_timeout_ms // 1000}s"
    assert lock == f"{settings.lock_timeout_ms // 1000}s"


async def _read_then_write(engine: AsyncEngine, begin: str, both_read: asyncio.Barrier) -> None:
    async with engine.connect() as connection:
        await connection.execution_options(**{SQLITE_BEGIN_OPTION: begin})
        async with connection.begin():
            await connection.execute(text("SELECT count(*) FROM users"))
            if begin == "DEFERRED":
                # Both transactions now hold a read snapshot; neither can upgrade to write.
                await both_read.wait()
            await connection.execute(
                text("INSERT INTO users (email, name) VALUES (:e, 'x')"),
                {"e": f"{id(both_read)}-{asyncio.current_task()!r}@example.com"},
            )


@sqlite_only
async def test_deferred_read_then_write_transactions_fail_with_database_is_locked(
    engine: AsyncEngine, sessions: object
) -> None:
    # What BEGIN IMMEDIATE prevents: two deferred transactions read, then both try to
    # write. SQLite refuses the second upgrade at once (waiting could deadlock), so the
    # busy timeout does not help.
    barrier = asyncio.Barrier(2)
    results = await asyncio.gather(
        _read_then_write(engine, "DEFERRED", barrier),
        _read_then_write(engine, "DEFERRED", barrier),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1
    assert isinstance(errors[0], OperationalError)
    assert "database is locked" in str(errors[0])


@sqlite_only
async def test_immediate_read_then_write_transactions_queue_and_all_succeed(
    engine: AsyncEngine, sessions: object
) -> None:
    barrier = asyncio.Barrier(2)
    await asyncio.gather(*(_read_then_write(engine, "IMMEDIATE", barrier) for _ in range(8)))
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM users"))).scalar_one() == 8


async def test_pool_status_counts_checked_out_connections(engine: AsyncEngine) -> None:
    before = pool_status(engine)
    async with engine.connect(), engine.connect():
        during = pool_status(engine)
    after = pool_status(engine)
    assert during.checked_out == before.checked_out + 2
    assert after.checked_out == before.checked_out
    assert during.size == 5


def test_a_disposed_engine_leaves_no_thread_that_keeps_the_process_alive(tmp_path: Path) -> None:
    # aiosqlite runs each connection on its own thread; an engine that is not disposed
    # leaves pooled connections (and their threads) behind. The script must exit by itself.
    script = textwrap.dedent(
        f"""
        import asyncio, threading
        from sqlalchemy import text
        from db import DatabaseSettings, create_engine

        async def main():
            engine = create_engine(DatabaseSettings(url="sqlite+aiosqlite:///{tmp_path}/d.db"))
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            await engine.dispose()
            # A stopped worker thread may still be returning from its last call: give
            # each a bounded moment to end; one that was never stopped does not end.
            for thread in threading.enumerate():
                if thread is not threading.main_thread():
                    thread.join(timeout=10)
            print(threading.active_count())

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "1"


@pytest.mark.parametrize("url", ["sqlite+aiosqlite:///x.db"])
def test_the_pool_class_is_a_real_queue_pool_for_sqlite_files(url: str, tmp_path: Path) -> None:
    engine = create_engine(DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/{url[-4:]}"))
    assert type(engine.pool).__name__ == "AsyncAdaptedQueuePool"
    assert pool_status(engine).size == 5


async def test_the_pool_hands_out_the_most_recently_returned_connection(
    engine: AsyncEngine,
) -> None:
    # LIFO: a busy task keeps reusing one warm connection (prepared statements, page
    # cache) instead of rotating through every pooled one.
    async with engine.connect() as first:
        first_driver = (await first.get_raw_connection()).driver_connection
        async with engine.connect() as second:
            second_driver = (await second.get_raw_connection()).driver_connection
    # `second` went back before `first`: `first` is the most recently returned.
    async with engine.connect() as again:
        assert (await again.get_raw_connection()).driver_connection is first_driver
    assert first_driver is not second_driver


async def test_an_engine_knows_the_settings_it_was_built_from(
    engine: AsyncEngine, settings: DatabaseSettings, tmp_path: Path
) -> None:
    assert engine_settings(engine) is settings
    foreign = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/foreign.db")
    try:
        assert engine_settings(foreign) is None
    finally:
        await foreign.dispose()
