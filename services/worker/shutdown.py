"""Stopping a worker: the transactions it may cancel, and how long it waits for them.

On a stop, in-flight batches get `shutdown_timeout` seconds to finish; then their running
transactions are cancelled (they roll back) and each batch hands its unsettled jobs back
to the queue. A claim still running at the stop is cancelled too, and a claim that had
already committed hands its jobs back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from services.results import ClaimedJob

log = logging.getLogger(__name__)


class RunningTransactions:
    """The transaction each batch is in right now, by batch: shutdown and lease losses
    cancel it (and only it; the batch's own task then settles the rest)."""

    def __init__(self) -> None:
        self._running: dict[int, asyncio.Task[Any]] = {}
        self.cancelling = False  # past the shutdown deadline, or run() cancelled

    @contextmanager
    def tracking(self, key: int, transaction: asyncio.Task[Any]) -> Iterator[None]:
        """Within the block, `transaction` is batch `key`'s current one (to cancel)."""
        self._running[key] = transaction
        try:
            yield
        finally:
            del self._running[key]

    def cancel(self, key: int) -> None:
        """Cancel batch `key`'s transaction, if one is running."""
        task = self._running.get(key)
        if task is not None:
            task.cancel()

    def cancel_all(self) -> None:
        """Stop waiting: cancel every running transaction; batches hand back their jobs."""
        self.cancelling = True
        for task in self._running.values():
            task.cancel()


Collect = Callable[[asyncio.Task[None], set[asyncio.Task[None]]], None]


async def shut_down(
    batches: set[asyncio.Task[None]],
    timeout: float,  # noqa: ASYNC109 (a grace period, then cancellation)
    transactions: RunningTransactions,
    collect: Collect,
) -> None:
    """Wait up to `timeout` seconds for `batches`, then cancel their transactions."""
    if not batches:
        return
    _, pending = await asyncio.wait(batches, timeout=timeout)
    if pending:
        transactions.cancel_all()
        await asyncio.wait(pending)
    for task in set(batches):
        collect(task, batches)


async def cancel_batches(
    batches: set[asyncio.Task[None]], transactions: RunningTransactions, collect: Collect
) -> None:
    """run() itself was cancelled: leave no handler behind."""
    if not batches:
        return
    transactions.cancel_all()
    await asyncio.wait(batches)
    for task in set(batches):
        collect(task, batches)


async def abandon(claim: asyncio.Task[list[ClaimedJob]]) -> list[ClaimedJob]:
    """The claim's jobs, cancelling it first if it is still running.

    A cancelled claim rolls back, unless its COMMIT was already on its way: then its
    jobs are leased to us unseen, and go back to the queue when the lease expires.
    """
    if not claim.done():
        claim.cancel()
        await asyncio.wait({claim})
    return [] if claim.cancelled() else claim.result()
