"""Use case: run queued jobs, in batches, until told to stop.

One idea per module: `scheduling` (the Worker: when to claim, how many batches at once,
and `drain`), `settlement` (a claimed batch's handlers and completions in few
transactions), `heartbeat` (lease renewal while handlers run), `shutdown` (the grace
period, then cancellation and hand-back), `events` (what happened to each job).
"""

from services.worker.events import Listener, WorkerEvent
from services.worker.scheduling import (
    MAX_BATCH_SIZE,
    MAX_CONCURRENCY,
    Worker,
    default_worker_id,
    drain,
)

__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_CONCURRENCY",
    "Listener",
    "Worker",
    "WorkerEvent",
    "default_worker_id",
    "drain",
]
