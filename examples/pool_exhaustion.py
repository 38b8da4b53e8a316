"""Pool exhaustion: more concurrent work than `pool_size + max_overflow` connections.

A task that needs a connection when all are lent out waits up to `pool_timeout`, then
fails. Under a burst, every request beyond the pool waits, and those still waiting at the
timeout fail: the slower each holds its connection, the fewer get through. SQLAlchemy's
error is a `TimeoutError` about "QueuePool limit"; this project raises the typed
`PoolExhausted` (a kind of `OperationTimeout`) whose message names the settings.

The fix is to bound the concurrency below the pool, as `DashboardService` does with its
limit per engine, and not to hold a connection while waiting on something else.

The sync variant deadlocks outright: a threaded server (a sync FastAPI route runs on a
pool of 40 threads) where a request holds one connection and opens a second (a nested
session, a helper with its own) needs two connections per thread. Once every connection
is held by a thread waiting for its second, nobody can finish until `pool_timeout`.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import sqlalchemy
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession

from examples.scratch import Sessions, fix, pitfall, scratch_ledger
from services.errors import PoolExhausted
from services.transactions import run_in_transaction

POOL_SIZE: Final = 2
POOL_TIMEOUT: Final = 0.2
POOL: Final = {"pool_size": POOL_SIZE, "max_overflow": 1, "pool_timeout": POOL_TIMEOUT}
REQUESTS: Final = 8
# Each request holds its connection this long (a slow call): the third wave of requests
# would wait twice this for a connection, longer than pool_timeout.
HOLD_SECONDS: Final = 0.15


async def request(sessions: Sessions) -> None:
    async def work(session: AsyncSession) -> None:
        await session.execute(text("SELECT 1"))
        await asyncio.sleep(HOLD_SECONDS)  # waiting on something else, connection held

    # Read-only: on SQLite a deferred BEGIN, so the requests queue for connections only,
    # not for the write lock as well.
    await run_in_transaction(sessions, work, read_only=True)


async def burst(sessions: Sessions, limit: asyncio.Semaphore | None) -> tuple[int, str]:
    async def one() -> None:
        if limit is None:
            return await request(sessions)
        async with limit:
            return await request(sessions)

    results = await asyncio.gather(*(one() for _ in range(REQUESTS)), return_exceptions=True)
    failed = [r for r in results if isinstance(r, PoolExhausted)]
    return len(failed), str(failed[0]) if failed else ""


def two_connections_per_thread(threads: int, connections: int) -> tuple[int, float]:
    """Threads that each hold one connection and then open a second, on a sync pool of
    `connections`: how many failed, and after how long."""
    with tempfile.TemporaryDirectory(prefix="ledger-example-") as folder:
        engine = sqlalchemy.create_engine(
            f"sqlite:///{folder}/sync.db",
            poolclass=sqlalchemy.QueuePool,
            pool_size=connections,
            max_overflow=0,
            pool_timeout=POOL_TIMEOUT,
        )
        everyone_holds_one = threading.Barrier(min(threads, connections))

        def handle_request() -> None:
            with engine.connect() as first:
                first.execute(text("SELECT 1"))
                if threads >= connections:
                    everyone_holds_one.wait()  # makes the unlucky interleaving certain
                with engine.connect() as second:  # the nested session's connection
                    second.execute(text("SELECT 1"))

        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            futures = [pool.submit(handle_request) for _ in range(threads)]
        failed = sum(isinstance(f.exception(), PoolTimeout) for f in futures)
        engine.dispose()
        return failed, time.perf_counter() - started


async def main() -> None:
    async with scratch_ledger(**POOL) as (_, sessions):
        failed, message = await burst(sessions, limit=None)
        pitfall(f"{REQUESTS} concurrent requests on a pool of 2 + 1: {failed} failed: {message}")
        started = time.perf_counter()
        failed, _ = await burst(sessions, limit=asyncio.Semaphore(POOL_SIZE))
        fix(
            f"bounded to the pool size with a semaphore: {REQUESTS - failed} of {REQUESTS} "
            f"succeeded, in {time.perf_counter() - started:.2f}s"
        )

    failed, seconds = await asyncio.to_thread(two_connections_per_thread, 2, 2)
    pitfall(
        f"sync deadlock: 2 threads, each holding 1 of 2 connections and waiting for a "
        f"second: {failed} of 2 failed after {seconds:.2f}s (pool_timeout broke the deadlock)"
    )
    failed, seconds = await asyncio.to_thread(two_connections_per_thread, 2, 4)
    fix(f"a pool of 2 connections per thread: {2 - failed} of 2 succeeded, in {seconds:.2f}s")


if __name__ == "__main__":
    asyncio.run(main())
