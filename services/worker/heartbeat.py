"""Lease heartbeats: a batch's unsettled jobs stay leased while their handlers run."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from services.jobs import JobQueue
from services.results import ClaimedJob
from services.worker.events import WorkerEvent, WorkerTally

log = logging.getLogger(__name__)


async def keep_leases(
    queue: JobQueue,
    pending: Callable[[], list[ClaimedJob]],
    *,
    interval: float,
    lease_seconds: float,
    tally: WorkerTally,
    lost: Callable[[set[int]], None],
) -> None:
    """Every `interval` seconds, renew the leases of the jobs `pending()` returns.

    Jobs whose lease was taken over go to `lost`: someone else runs them now, and the
    transaction running them could only be refused. Runs until cancelled.
    """
    while True:
        await asyncio.sleep(interval)
        jobs = pending()
        if not jobs:
            continue
        try:
            held = await queue.extend_many(jobs, lease_seconds)
        except Exception:
            # Keep going: the next heartbeat tries again, and the leases have time left.
            log.exception("worker %s could not renew its leases", tally.worker_id)
            continue
        for job in jobs:
            if job.id in held:
                tally.emit(WorkerEvent.EXTENDED, job)
        gone = {job.id for job in jobs} - held
        if gone:
            lost(gone)
