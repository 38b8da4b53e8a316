"""Measure the README's async patterns on this machine: `python -m lab.measure`.

- Worker throughput: N transfer.completed jobs drained by 1 and by 4 worker processes
  (each its own engine, as deployed), on SQLite and on PostgreSQL.
- Fetch many by id: one IN query against N lookups, concurrent and sequential.

Each engine gets a throw-away database (a temporary SQLite file; a PostgreSQL database
created from --postgres-admin-url and dropped afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path

from sqlalchemy import delete

from db import DatabaseSettings, create_engine, create_session_factory, migrations
from models import Job
from services import (
    AccountService,
    ClaimedJob,
    DashboardService,
    JobQueue,
    TransferRequest,
    TransferService,
    UserService,
    Worker,
    WorkerEvent,
    ledger_handlers,
)
from tests.support.databases import scratch_postgres_database

DEFAULT_POSTGRES_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@asynccontextmanager
async def throwaway_database(backend: str, admin_url: str) -> AsyncIterator[str]:
    """The URL of an empty database that is removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite+aiosqlite:///{Path(folder) / 'measure.db'}"
        return
    async with scratch_postgres_database(admin_url, "ledger_measure") as url:
        yield url


async def _fill_queue(url: str, jobs: int) -> None:
    """Empty the jobs table, then enqueue `jobs` transfer.completed jobs (via deposits)."""
    engine = create_engine(DatabaseSettings(url=url))
    try:
        sessions = create_session_factory(engine)
        async with engine.begin() as connection:
            await connection.execute(delete(Job))
        user = await UserService(sessions).register(
            f"measure-{secrets.token_hex(4)}@example.com", "Measure"
        )
        account = await AccountService(sessions).open(user.id, "EUR")
        transfers = TransferService(sessions)
        for start in range(0, jobs, 500):
            size = min(500, jobs - start)
            await transfers.transfer_many([TransferRequest.of(None, account.id, 1)] * size)
    finally:
        await engine.dispose()


def _worker_process(
    url: str,
    concurrency: int,
    jobs: int,
    shared: Synchronized[int],
    events: tuple[ProcessEvent, ProcessEvent, ProcessEvent],
) -> None:
    """One worker process: connect, wait for the start, run until all jobs are done."""
    ready, go, done = events

    async def main() -> None:
        engine = create_engine(DatabaseSettings(url=url))
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def count(event: WorkerEvent, job: ClaimedJob) -> None:
            if event is WorkerEvent.DONE:
                with shared.get_lock():
                    shared.value += 1
                    if shared.value >= jobs:
                        done.set()

        def stop_when_all_done() -> None:  # in a thread: `done` is a process-wide event
            done.wait()
            loop.call_soon_threadsafe(stop.set)

        try:
            queue = JobQueue(create_session_factory(engine))
            worker = Worker(
                queue,
                ledger_handlers(),
                concurrency=concurrency,
                poll_interval=0.05,
                listener=count,
            )
            await queue.stats()  # connected before the clock starts
            ready.set()
            await asyncio.to_thread(go.wait)
            waiter = asyncio.create_task(asyncio.to_thread(stop_when_all_done))
            await worker.run(stop)
            await waiter
        finally:
            await engine.dispose()

    asyncio.run(main())


async def drain_seconds(url: str, jobs: int, workers: int, concurrency: int) -> float:
    """Seconds for `workers` worker processes to drain `jobs` jobs."""
    await _fill_queue(url, jobs)
    context = multiprocessing.get_context("spawn")
    go, done = context.Event(), context.Event()
    readies = [context.Event() for _ in range(workers)]
    shared = context.Value("i", 0)
    processes = [
        context.Process(
            target=_worker_process, args=(url, concurrency, jobs, shared, (ready, go, done))
        )
        for ready in readies
    ]
    for process in processes:
        process.start()
    try:
        for ready in readies:  # started and connected: start-up is not measured
            if not await asyncio.to_thread(ready.wait, 120):
                raise RuntimeError("a worker process did not start; see its error above")
        started = time.perf_counter()
        go.set()
        await asyncio.to_thread(done.wait)
        elapsed = time.perf_counter() - started
    finally:
        done.set()
        for process in processes:
            await asyncio.to_thread(process.join, 60)
    return elapsed


async def fetch_many_ms(url: str, sizes: Sequence[int], repeat: int) -> dict[str, float]:
    """Median milliseconds per call: one IN query vs N lookups, concurrent and sequential."""
    engine = create_engine(DatabaseSettings(url=url))
    results: dict[str, float] = {}
    try:
        await migrations.upgrade(engine)
        sessions = create_session_factory(engine)
        users, accounts = UserService(sessions), AccountService(sessions)
        ids = []
        for n in range(max(sizes)):
            user = await users.register(f"fetch-{secrets.token_hex(4)}-{n}@example.com", "F")
            ids.append((await accounts.open(user.id, "EUR")).id)
        dashboard = DashboardService(sessions)

        async def timed(call: Callable[[], Awaitable[object]]) -> float:
            await call()  # warm up: pool, statement cache
            samples = []
            for _ in range(repeat):
                began = time.perf_counter()
                await call()
                samples.append((time.perf_counter() - began) * 1000)
            return statistics.median(samples)

        for size in sizes:
            chosen = ids[:size]

            async def one_in_query(chosen: list[int] = chosen) -> object:
                return await dashboard.account_owners(chosen)

            async def concurrent(chosen: list[int] = chosen) -> object:
                return await asyncio.gather(*(accounts.get(i) for i in chosen))

            async def sequential(chosen: list[int] = chosen) -> object:
                return [await accounts.get(i) for i in chosen]

            results[f"{size} ids: one IN query"] = await timed(one_in_query)
            results[f"{size} ids: {size} concurrent lookups"] = await timed(concurrent)
            results[f"{size} ids: {size} sequential lookups"] = await timed(sequential)
    finally:
        await engine.dispose()
    return results


async def measure(args: argparse.Namespace) -> None:
    """Run every measurement on every engine and print the figures."""
    backends = ["sqlite"] + ([] if args.no_postgres else ["postgresql"])
    for backend in backends:
        async with throwaway_database(backend, args.postgres_admin_url) as url:
            engine = create_engine(DatabaseSettings(url=url))
            await migrations.upgrade(engine)
            await engine.dispose()
            print(f"== {backend}")
            rates = {}
            for workers in (1, 4):
                seconds = drain_seconds(url, args.jobs, workers, args.concurrency)
                rates[workers] = args.jobs / await seconds
                print(
                    f"worker throughput, {workers} worker process(es) x concurrency "
                    f"{args.concurrency}: {rates[workers]:.0f} jobs/s"
                )
            print(f"  4 workers / 1 worker: {rates[4] / rates[1]:.2f}x")
            figures = await fetch_many_ms(url, args.sizes, args.repeat)
            for label, ms in figures.items():
                size = label.split(" ")[0]
                ratio = ms / figures[f"{size} ids: one IN query"]
                print(f"fetch many, {label}: {ms:.2f} ms ({ratio:.1f}x the IN query)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m lab.measure", description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000, help="jobs to drain (default 2000)")
    parser.add_argument("--concurrency", type=int, default=4, help="per worker (default 4)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100], help="ids per fetch")
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per figure")
    parser.add_argument("--postgres-admin-url", default=DEFAULT_POSTGRES_ADMIN_URL)
    parser.add_argument("--no-postgres", action="store_true", help="measure SQLite only")
    asyncio.run(measure(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
