"""Group commit: concurrent transfers coalesced into one transaction.

SQLite admits one writer at a time and every statement is a hop to aiosqlite's thread, so
64 clients each committing their own transfer mostly wait in line. `TransferBatcher`
gives the write transactions to one writer task: requests that arrive while a batch is
committing form the next batch, which the batch core applies in the same handful of
statements it needs for a single transfer. No fixed waiting delay: under light load a
batch is one request and latency is what `TransferService` gives.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

from db import Position, current_position
from services.callers import SYSTEM, Caller
from services.errors import (
    BatcherClosed,
    DatabaseBusy,
    DatabaseUnavailable,
    InvalidInput,
    OperationTimeout,
    OutcomeUnknown,
    SchemaNotMigrated,
    StorageFull,
)
from services.results import TransferRecord
from services.transactions import Sessions, deadline
from services.transfer_core import (
    Outcome,
    TransferRequest,
    execute_transfers,
)

# Failures of the database, not of a request in the batch: splitting the batch cannot help
# (each half would meet the same busy, unreachable or unmigrated database), so every
# request of the batch gets the failure at once.
_DATABASE_FAULTS: Final = (
    DatabaseBusy,
    DatabaseUnavailable,
    OperationTimeout,
    OutcomeUnknown,  # a half may have committed: running it again could apply it twice
    SchemaNotMigrated,
    StorageFull,
)


def split_budget(size: int) -> int:
    """How many transactions a failing batch of `size` may add while it is halved to
    isolate the requests that fail it: four per level of halving, enough to find two such
    requests; past it the rest of the batch gets the failure. A batch of 256 that fails
    throughout costs at most 33 transactions, not 511."""
    return 4 * (size - 1).bit_length()


@dataclass(slots=True)
class _Pending:
    request: TransferRequest
    future: asyncio.Future[TransferRecord]
    position: int | None = None  # the WAL position after its batch (db/replicas.py)


class TransferBatcher:
    """A drop-in for `TransferService.transfer` that commits concurrent calls together.

        async with TransferBatcher(sessions) as batcher:
            record = await batcher.transfer(source_id, destination_id, 2_500, idempotency_key="k")

    Each request still succeeds or fails on its own, with the same errors and result as
    `TransferService.transfer`. Cancellation: a request cancelled before its batch starts
    is dropped; once its batch has started its outcome stands, committed or not, and the
    caller learns it by retrying with the same idempotency key. Leaving the `async with`
    block stops taking requests and drains every request already accepted.
    """

    def __init__(
        self,
        sessions: Sessions,
        *,
        max_batch: int = 256,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise InvalidInput(f"max_batch must be at least 1, got {max_batch!r}")
        self._sessions = sessions
        # Told the size of every batch as it starts (e.g. for a metrics histogram).
        self._on_batch = on_batch
        self._max_batch = max_batch
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._writer: asyncio.Task[None] | None = None
        self._written = Position()
        self.batches = 0
        self.largest_batch = 0

    @property
    def waiting(self) -> int:
        """Requests accepted but not yet in a batch."""
        return len(self._queue)

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def start(self) -> None:
        """Start the writer task (done by `async with`)."""
        if self._writer is not None:
            raise RuntimeError("TransferBatcher already started")
        self._writer = asyncio.create_task(self._write_loop(), name="transfer-batcher")

    async def close(self) -> None:
        """Refuse new requests, commit those already accepted, stop the writer."""
        self._closing = True
        self._wakeup.set()
        if self._writer is not None:
            await self._writer

    async def transfer(
        self,
        source_id: int,
        destination_id: int,
        amount: int,
        *,
        idempotency_key: str | None = None,
        description: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (raises OperationTimeout)
        caller: Caller = SYSTEM,
    ) -> TransferRecord:
        """Exactly `TransferService.transfer`, committed in a batch with concurrent calls.

        One batcher serves every caller of a process (the HTTP API's users share one), so
        the caller comes with each request rather than with the batcher.

        A `timeout` that expires before the request's batch starts drops the request; one
        that expires later leaves its outcome standing (see the class docstring). Either
        way the caller gets OperationTimeout.
        """
        request = TransferRequest.of(
            source_id,
            destination_id,
            amount,
            idempotency_key=idempotency_key,
            description=description,
            caller=caller,
            accounts_only=True,
        )
        if self._closing or self._writer is None or self._writer.done():
            raise BatcherClosed("the transfer batcher is not running")
        pending = _Pending(request, asyncio.get_running_loop().create_future())
        if timeout is None:  # the common case, without the cost of a context manager
            record = await self._enqueue(pending)
        else:
            async with deadline(timeout):
                record = await self._enqueue(pending)
        # Committed by the writer task: the caller's reads must see it too.
        current_position().advance(pending.position)
        return record

    def _enqueue(self, pending: _Pending) -> asyncio.Future[TransferRecord]:
        self._queue.append(pending)
        self._wakeup.set()
        return pending.future

    async def _write_loop(self) -> None:
        # The writer's position, shared with the batch tasks it starts, which advance it.
        self._written = current_position()
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._queue:
                    await self._commit(self._next_batch())
                if self._closing and not self._queue:
                    return
        finally:
            # Only reached early if the loop itself failed: no caller may wait forever.
            for pending in self._queue:
                if not pending.future.done():
                    pending.future.set_exception(BatcherClosed("the transfer batcher stopped"))
            self._queue.clear()

    def _next_batch(self) -> list[_Pending]:
        batch: list[_Pending] = []
        while self._queue and len(batch) < self._max_batch:
            pending = self._queue.popleft()
            if not pending.future.cancelled():  # cancelled before its batch started: dropped
                batch.append(pending)
        return batch

    async def _commit(self, batch: list[_Pending], budget: list[int] | None = None) -> None:
        if not batch:
            return
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        if self._on_batch is not None:
            self._on_batch(len(batch))
        # Shielded: once a batch has started, its transaction runs to its end even if the
        # writer is cancelled, and its callers are answered when it does.
        work = asyncio.create_task(execute_transfers(self._sessions, [p.request for p in batch]))
        try:
            outcomes = await asyncio.shield(work)
        except asyncio.CancelledError:
            work.add_done_callback(lambda done: _settle_all(batch, done))
            raise
        except Exception as exc:
            if len(batch) == 1 or isinstance(exc, _DATABASE_FAULTS):
                for pending in batch:
                    _settle(pending, exc)
                return
            # Retries inside execute_transfers did not help and the database itself is
            # fine: isolate the poisoned request by halving, so it cannot fail the others,
            # within the budget of the batch this one was split from.
            remaining = budget if budget is not None else [split_budget(len(batch))]
            middle = len(batch) // 2
            for half in (batch[:middle], batch[middle:]):
                if remaining[0] > 0:
                    remaining[0] -= 1
                    await self._commit(half, remaining)
                else:
                    for pending in half:
                        _settle(pending, exc)
            return
        for pending, outcome in zip(batch, outcomes, strict=True):
            pending.position = self._written.lsn
            _settle(pending, outcome)


def _settle(pending: _Pending, outcome: Outcome | BaseException) -> None:
    if pending.future.done():  # the caller was cancelled after its batch started
        return
    if isinstance(outcome, BaseException):
        pending.future.set_exception(outcome)
    else:
        pending.future.set_result(outcome)


def _settle_all(batch: list[_Pending], done: asyncio.Task[list[Outcome]]) -> None:
    if done.cancelled():
        for pending in batch:
            _settle(pending, BatcherClosed("the transfer batcher was cancelled"))
    elif (exc := done.exception()) is not None:
        for pending in batch:
            _settle(pending, exc)
    else:
        for pending, outcome in zip(batch, done.result(), strict=True):
            _settle(pending, outcome)
