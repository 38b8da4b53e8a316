"""Helpers for the worker tests: a listener that counts events, and a worker run as a task."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from services import ClaimedJob, Worker, WorkerEvent, WorkerStats


class Events:
    """A worker listener that counts events and wakes tests waiting for a count."""

    def __init__(self, stop: asyncio.Event | None = None) -> None:
        self.counts: Counter[WorkerEvent] = Counter()
        self.jobs: dict[WorkerEvent, list[int]] = {}
        self._changed = asyncio.Condition()
        self._stop = stop
        self._stop_when: Callable[[Counter[WorkerEvent]], bool] | None = None

    def __call__(self, event: WorkerEvent, job: ClaimedJob) -> None:
        self.counts[event] += 1
        self.jobs.setdefault(event, []).append(job.id)
        if self._stop is not None and self._stop_when is not None and self._stop_when(self.counts):
            self._stop.set()
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def stop_when(self, condition: Callable[[Counter[WorkerEvent]], bool]) -> None:
        """Set the stop event as soon as `condition(counts)` holds."""
        self._stop_when = condition

    async def wait_for(self, event: WorkerEvent, count: int = 1) -> None:
        """Return once `event` has happened `count` times (fail, not hang, if it never does)."""
        async with asyncio.timeout(60), self._changed:
            await self._changed.wait_for(lambda: self.counts[event] >= count)


@asynccontextmanager
async def running_worker(
    worker: Worker, stop: asyncio.Event
) -> AsyncIterator[asyncio.Task[WorkerStats]]:
    """Run the worker in a task; if the test fails first, cancel it rather than leak it."""
    run = asyncio.create_task(worker.run(stop))
    try:
        yield run
    finally:
        if not run.done():
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
