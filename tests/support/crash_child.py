"""A process that does ledger work until it is killed: the subject of tests/test_crash.py.

    python -m tests.support.crash_child MODE DATABASE_URL [options]

It prints one line per event on stdout, flushed at once, so the parent always knows what
was asked and what was acknowledged before the kill:

    start SEQ SOURCE DESTINATION AMOUNT KEY   a request is about to be sent
    done SEQ TRANSFER_ID                      the request returned this transfer
    paused PHASE                              the process froze at PHASE (see below)

The `worker` mode drains due jobs with a Worker (lease `--lease` seconds) and prints

    claimed JOB_ID                            the job was leased to this worker
    finished JOB_ID                           its effect and completion committed
    EVENT JOB_ID                              any other worker event (retrying, lost, ...)

With `--pause-at PHASE --pause-after N`, the N-th time any transaction reaches PHASE the
whole process stops right there (its event loop thread blocks), so a kill lands at
exactly that point:

    flushed     the transfer row is inserted, nothing committed (on SQLite no balance
                moved yet; on PostgreSQL the balances move in the same statement);
                named after the ORM flush it once was
    committing  every change is written, COMMIT not yet sent
    committed   COMMIT succeeded, the caller has not been told
    handled     (worker mode) a job's handler wrote its notification, nothing committed

Without it the process runs freely and the parent kills it whenever it likes. A mode is
one kind of work; new kinds (e.g. a job worker) are added to MODES.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from db import DatabaseSettings, create_engine, create_session_factory
from services import JobQueue, TransferService, Worker, WorkerEvent, ledger_handlers
from services.job_handler import JobHandler
from services.results import ClaimedJob

PHASES: Final = ("flushed", "committing", "committed")
HANDLER_PHASE: Final = "handled"
# Safety bounds for a parent that never kills: the child ends by itself, and the parent
# then fails on reading EOF instead of a line it waits for.
MAX_SECONDS: Final = 60.0
MAX_FROZEN_SECONDS: Final = 60.0
EXIT_NOT_KILLED: Final = 3


def say(line: str) -> None:
    """One event line, flushed so the parent sees it before anything else happens."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def freeze(phase: str) -> None:
    """Say so, then block the event loop's thread until the parent kills the process."""
    say(f"paused {phase}")
    threading.Event().wait(MAX_FROZEN_SECONDS)
    os._exit(EXIT_NOT_KILLED)


def install_pause(engine: AsyncEngine, phase: str, after: int) -> None:
    """Freeze the process the `after`-th time a transaction reaches `phase`."""
    seen = itertools.count(1)

    def reached(*_: Any) -> None:
        if next(seen) == after:
            freeze(phase)

    def after_transfer_insert(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # Anywhere in the statement: on PostgreSQL the insert is one CTE of the batch's write.
        if "INSERT INTO TRANSFERS" in statement.upper():
            reached()

    if phase == "flushed":
        event.listen(engine.sync_engine, "after_cursor_execute", after_transfer_insert)
    elif phase == "committing":
        event.listen(engine.sync_engine, "commit", reached)
    elif phase == "committed":
        event.listen(Session, "after_commit", reached)
    else:
        raise ValueError(f"unknown phase {phase!r}; one of {PHASES}")


async def run_transfers(engine: AsyncEngine, args: argparse.Namespace) -> None:
    """`--tasks` concurrent loops, each sending keyed transfers between `--accounts`."""
    service = TransferService(create_session_factory(engine))
    accounts = [int(a) for a in args.accounts.split(",")]
    rng = random.Random(args.seed)
    numbers = itertools.count(1)
    deadline = asyncio.get_running_loop().time() + MAX_SECONDS

    async def client() -> None:
        while asyncio.get_running_loop().time() < deadline:
            seq = next(numbers)
            source, destination = rng.sample(accounts, 2)
            amount = rng.randint(1, 100)
            key = f"{args.run}-{seq}"
            say(f"start {seq} {source} {destination} {amount} {key}")
            record = await service.transfer(source, destination, amount, idempotency_key=key)
            say(f"done {seq} {record.id}")

    await asyncio.gather(*(client() for _ in range(args.tasks)))


def pausing(handler: JobHandler, after: int) -> JobHandler:
    """`handler`, but the `after`-th run freezes the process once its effect is written
    and before the job's transaction commits."""
    runs = itertools.count(1)

    async def paused(job: ClaimedJob, session: AsyncSession) -> None:
        await handler(job, session)
        if next(runs) == after:
            await session.flush()
            freeze(HANDLER_PHASE)

    return paused


async def run_worker(engine: AsyncEngine, args: argparse.Namespace) -> None:
    """One Worker (`--tasks` jobs at a time, `--lease` s leases) draining due jobs."""

    def announce(event: WorkerEvent, job: ClaimedJob) -> None:
        if event is WorkerEvent.STARTED:
            say(f"claimed {job.id}")
        elif event is WorkerEvent.DONE:
            say(f"finished {job.id}")
        elif event is not WorkerEvent.EXTENDED:
            say(f"{event} {job.id}")

    handlers = ledger_handlers()
    if args.pause_at == HANDLER_PHASE:
        handlers = {kind: pausing(h, args.pause_after) for kind, h in handlers.items()}
    worker = Worker(
        JobQueue(create_session_factory(engine)),
        handlers,
        concurrency=args.tasks,
        poll_interval=0.05,
        lease_seconds=args.lease,
        shutdown_timeout=0,
        listener=announce,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(MAX_SECONDS, stop.set)
    await worker.run(stop)


Mode = Callable[[AsyncEngine, argparse.Namespace], Awaitable[None]]
MODES: dict[str, Mode] = {"transfers": run_transfers, "worker": run_worker}


async def main(args: argparse.Namespace) -> None:
    engine = create_engine(DatabaseSettings(url=args.database_url))
    if args.pause_at in PHASES:
        install_pause(engine, args.pause_at, args.pause_after)
    try:
        await MODES[args.mode](engine, args)
    finally:
        await engine.dispose()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="crash_child")
    parser.add_argument("mode", choices=sorted(MODES))
    parser.add_argument("database_url")
    parser.add_argument("--accounts", default="", help="comma-separated account ids")
    parser.add_argument("--run", default="", help="prefix of this run's idempotency keys")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--pause-at", choices=(*PHASES, HANDLER_PHASE), default=None)
    parser.add_argument("--lease", type=float, default=1.0, help="worker mode: lease seconds")
    parser.add_argument("--pause-after", type=int, default=1)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse(sys.argv[1:])))
    sys.exit(EXIT_NOT_KILLED)
