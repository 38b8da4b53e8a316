"""What happens to a worker's jobs: the events, their counts, and the listener told of each."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Final

from models import JobStatus
from services.results import ClaimedJob, WorkerStats

log = logging.getLogger(__name__)


class WorkerEvent(StrEnum):
    """What happened to a job in this worker; `Worker(listener=...)` hears each one."""

    STARTED = "started"
    EXTENDED = "extended"  # the lease was renewed while the handler ran
    DONE = "done"
    RETRYING = "retrying"  # failed, queued again after a backoff
    DEAD = "dead"  # failed for the last time, or permanently
    LOST = "lost"  # the lease was taken over (or could not be settled): another run decides
    RELEASED = "released"  # unfinished at shutdown, handed back to the queue


Listener = Callable[[WorkerEvent, ClaimedJob], None]

# The events after which a job is no longer this worker's.
FINAL_EVENTS: Final = frozenset(
    {
        WorkerEvent.DONE,
        WorkerEvent.RETRYING,
        WorkerEvent.DEAD,
        WorkerEvent.LOST,
        WorkerEvent.RELEASED,
    }
)
# A recorded failure's new job status, as an event.
FAILURE_EVENTS: Final[Mapping[str | None, WorkerEvent]] = {
    JobStatus.DEAD: WorkerEvent.DEAD,
    JobStatus.QUEUED: WorkerEvent.RETRYING,
}


class WorkerTally:
    """Counts per event, jobs claimed and still in flight; tells the listener of each event."""

    def __init__(self, worker_id: str, listener: Listener | None) -> None:
        self.worker_id = worker_id
        self._listener = listener
        self._counts: dict[WorkerEvent, int] = dict.fromkeys(WorkerEvent, 0)
        self._claimed = 0
        self.in_flight = 0

    def claimed(self, count: int) -> None:
        """`count` more jobs are leased to this worker."""
        self._claimed += count
        self.in_flight += count

    def emit(self, event: WorkerEvent, job: ClaimedJob) -> None:
        """Count `event` for `job` and tell the listener."""
        self._counts[event] += 1
        if event in FINAL_EVENTS:
            self.in_flight -= 1
        if self._listener is not None:
            self._listener(event, job)

    async def record(
        self, job: ClaimedJob, update: Awaitable[bool | str | None], success: WorkerEvent
    ) -> None:
        """Emit `success` if the one-job `update` held its lease, else LOST."""
        try:
            result = await update
        except Exception:
            # The lease expires and another run settles the job; handlers are idempotent.
            log.exception(
                "worker %s could not record the outcome of job %s", self.worker_id, job.id
            )
            self.emit(WorkerEvent.LOST, job)
            return
        self.emit(success if result is True else WorkerEvent.LOST, job)

    def stats(self) -> WorkerStats:
        """The counts so far."""
        c = self._counts
        return WorkerStats(
            worker_id=self.worker_id,
            claimed=self._claimed,
            done=c[WorkerEvent.DONE],
            retrying=c[WorkerEvent.RETRYING],
            dead=c[WorkerEvent.DEAD],
            lost=c[WorkerEvent.LOST],
            released=c[WorkerEvent.RELEASED],
            in_flight=self.in_flight,
        )
