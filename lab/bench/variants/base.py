"""What every variant is: a way of running a list of operations with N concurrent clients."""

from __future__ import annotations

import asyncio
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import ClassVar, Final, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from lab.bench.ops import Kind, Meter, Op, Tally
from lab.bench.targets import Target
from services.transactions import backoff_delay

T = TypeVar("T")

AsyncOperation = Callable[[Op, Meter], Awaitable[int]]
BlockingOperation = Callable[[Op, Meter], int]

# Same budget as services.transactions.run_in_transaction, so every correct variant gets
# the same number of tries at a transaction that hit a busy database or a deadlock.
ATTEMPTS: Final = 5


class Refused(Exception):
    """A guarded debit found too little money: the transfer is rolled back, not an error."""


class Variant(ABC):
    """One way of talking to the database, opened on a target with a pool of `pool`.

    `run` is what the harness times; `open` and `close` (connecting, disconnecting) are not.
    `unsafe` marks a variant whose results may be wrong by design (the naive ORM), so a
    failed check is reported for it instead of failing the run.
    """

    key: ClassVar[str]
    label: ClassVar[str]
    kinds: ClassVar[frozenset[Kind]]
    unsafe: ClassVar[bool] = False
    # Which thread a hop goes to ("aiosqlite", "to_thread"), to price hops; None: no hops.
    hop_via: ClassVar[str | None] = None

    def __init__(self, target: Target, pool: int) -> None:
        self.target = target
        self.pool = pool

    @abstractmethod
    async def open(self) -> None:
        """Connect (the pool's connections are made here, not while timed)."""

    @abstractmethod
    async def close(self) -> None:
        """Disconnect everything `open` made."""

    @abstractmethod
    async def run(self, kind: Kind, ops: Sequence[Op], clients: int) -> Tally:
        """Run every op once, from `clients` concurrent clients sharing the pool."""

    def engines(self) -> Sequence[AsyncEngine]:
        """Async engines whose statements db.EngineMonitor should count during `run`."""
        return ()

    def statement_meter(self) -> AbstractContextManager[Meter]:
        """A meter filled while active, for statements counted outside the variant's code."""
        return nullcontext(Meter())

    def unsupported(self, kind: Kind) -> ValueError:
        """The error for a kind this variant does not implement."""
        return ValueError(f"variant {self.key} does not implement {kind}")


class AsyncVariant(Variant):
    """Clients are asyncio tasks in this event loop."""

    @abstractmethod
    def operation(self, kind: Kind) -> AsyncOperation:
        """The coroutine function that performs one `kind` operation."""

    async def run(self, kind: Kind, ops: Sequence[Op], clients: int) -> Tally:
        operation = self.operation(kind)
        # One iterator shared by all tasks: each takes the next op when it is free.
        pending = iter(ops)
        tallies = [Tally() for _ in range(clients)]

        async def client(tally: Tally) -> None:
            clock = time.perf_counter_ns  # a local name: looked up twice per operation
            for op in pending:
                started = clock()
                try:
                    value = await operation(op, tally.meter)
                except Exception as exc:
                    tally.fail(exc, clock() - started)
                else:
                    tally.record(value, clock() - started)

        await asyncio.gather(*(client(tally) for tally in tallies))
        return _merge(tallies)


class BlockingVariant(Variant):
    """Clients are OS threads; one client runs inline, as a plain blocking program would.

    The event loop thread waits for the threads with a blocking join on purpose: nothing
    else runs in the loop meanwhile, and handing the join to a thread would add a hop.
    """

    @abstractmethod
    def operation(self, kind: Kind) -> BlockingOperation:
        """The function that performs one `kind` operation."""

    async def run(self, kind: Kind, ops: Sequence[Op], clients: int) -> Tally:
        operation = self.operation(kind)
        if clients == 1:
            tally = Tally()
            _drive(operation, iter(ops), tally)
            return tally
        pending = _LockedIterator(iter(ops))
        tallies = [Tally() for _ in range(clients)]
        threads = [
            threading.Thread(target=_drive, args=(operation, pending, tally), daemon=True)
            for tally in tallies
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return _merge(tallies)


def _drive(operation: BlockingOperation, pending: Iterator[Op], tally: Tally) -> None:
    clock = time.perf_counter_ns  # a local name: looked up twice per operation
    for op in pending:
        started = clock()
        try:
            value = operation(op, tally.meter)
        except Exception as exc:
            tally.fail(exc, clock() - started)
        else:
            tally.record(value, clock() - started)


class _LockedIterator(Iterator[Op]):
    def __init__(self, source: Iterator[Op]) -> None:
        self._source = source
        self._lock = threading.Lock()

    def __next__(self) -> Op:
        with self._lock:
            return next(self._source)


def _merge(tallies: Sequence[Tally]) -> Tally:
    total = Tally()
    for tally in tallies:
        total.add(tally)
    return total


async def retry_async(
    attempt: Callable[[], Awaitable[T]],
    transient: Callable[[BaseException], bool],
    meter: Meter,
) -> T:
    """Run `attempt` again (after a jittered backoff) while it fails transiently."""
    for number in range(1, ATTEMPTS + 1):
        try:
            return await attempt()
        except Exception as exc:
            if number == ATTEMPTS or not transient(exc):
                raise
            meter.retries += 1
        await asyncio.sleep(backoff_delay(number))
    raise AssertionError("unreachable")  # pragma: no cover


def retry_blocking(
    attempt: Callable[[], T], transient: Callable[[BaseException], bool], meter: Meter
) -> T:
    """The blocking twin of `retry_async`."""
    for number in range(1, ATTEMPTS + 1):
        try:
            return attempt()
        except Exception as exc:
            if number == ATTEMPTS or not transient(exc):
                raise
            meter.retries += 1
        time.sleep(backoff_delay(number))
    raise AssertionError("unreachable")  # pragma: no cover


def sqlite_transient(exc: BaseException) -> bool:
    """sqlite3's busy/locked errors (raised once busy_timeout has run out)."""
    message = str(exc).lower()
    return "database is locked" in message or "database is busy" in message


# serialization_failure, deadlock_detected, lock_not_available: worth a rerun.
PG_TRANSIENT: Final = frozenset({"40001", "40P01", "55P03"})


def pg_transient(exc: BaseException) -> bool:
    """A PostgreSQL error (asyncpg or psycopg) after which the transaction may run again."""
    return getattr(exc, "sqlstate", None) in PG_TRANSIENT
