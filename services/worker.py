"""Use case: run queued jobs, concurrently, until told to stop.

Each job runs in its own transaction: the handler does its work in the session it is
given and the worker marks the job done in that same transaction, but only if it still
holds the lease. The effect and the completion commit together, so a job's database
effect happens exactly once even when a stalled worker's lease is taken over: the
stale run's completion is refused and its whole transaction rolls back.

The loop holds no session while it waits: claims, jobs and failures are each their own
short transaction, so an idle worker keeps no connection and no lock.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from models import JobStatus
from repositories import JobLease
from services.errors import InvalidInput, JobLeaseLost, PermanentJobFailure
from services.job_handler import JobHandler
from services.jobs import ClaimedJob, JobQueue
from services.transactions import run_in_transaction

log = logging.getLogger(__name__)

MAX_CONCURRENCY: Final = 1000


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


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """Counts of one worker's run so far."""

    worker_id: str
    claimed: int
    done: int
    retrying: int
    dead: int
    lost: int
    released: int
    in_flight: int

    def __str__(self) -> str:
        return (
            f"claimed {self.claimed}, done {self.done}, retrying {self.retrying}, "
            f"dead {self.dead}, lost {self.lost}, released {self.released}, "
            f"in flight {self.in_flight}"
        )


def default_worker_id() -> str:
    """host:pid:random, unique enough that two workers never share leases."""
    return f"{socket.gethostname()[:150]}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    """Claims jobs in batches and runs their handlers, at most `concurrency` at a time.

    - Claims only when at least half the slots are free (or none is busy), so a busy
      worker claims in batches rather than one job per finished job; after an empty
      claim it waits `poll_interval`, doubling up to `max_poll_interval` while idle.
    - Runs each handler with its own session, in a transaction that also completes the
      job; `job_timeout` (seconds) bounds that transaction.
    - Renews the lease of a running job every `heartbeat_interval` seconds (default: a
      third of `lease_seconds`); if the lease was taken over, the job is cancelled.
    - A handler that raises (or times out) fails its job: retry with backoff, or dead on
      the last attempt, at once for `PermanentJobFailure`; an unknown kind goes dead.
      Neither stops the worker.
    - On `stop`, in-flight jobs get `shutdown_timeout` seconds to finish; the rest are
      cancelled (their transactions roll back) and handed back to the queue.
    """

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, JobHandler],
        *,
        concurrency: int = 4,
        poll_interval: float = 1.0,
        lease_seconds: float = 30.0,
        max_poll_interval: float | None = None,
        heartbeat_interval: float | None = None,
        shutdown_timeout: float = 10.0,
        job_timeout: float | None = None,
        worker_id: str | None = None,
        listener: Listener | None = None,
    ) -> None:
        if isinstance(concurrency, bool) or not 1 <= concurrency <= MAX_CONCURRENCY:
            raise InvalidInput(f"concurrency must be from 1 to {MAX_CONCURRENCY}")
        for name, value in (
            ("poll_interval", poll_interval),
            ("lease_seconds", lease_seconds),
            ("job_timeout", 1.0 if job_timeout is None else job_timeout),
            ("max_poll_interval", 1.0 if max_poll_interval is None else max_poll_interval),
        ):
            if not value > 0:
                raise InvalidInput(f"{name} must be a positive number of seconds, got {value!r}")
        if not shutdown_timeout >= 0:
            raise InvalidInput(
                f"shutdown_timeout must be 0 or more seconds, got {shutdown_timeout}"
            )
        heartbeat = lease_seconds / 3 if heartbeat_interval is None else heartbeat_interval
        if not 0 < heartbeat < lease_seconds:
            raise InvalidInput("heartbeat_interval must be positive and shorter than the lease")
        self.queue = queue
        self.handlers = dict(handlers)
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.max_poll_interval = max(
            poll_interval, 30 * poll_interval if max_poll_interval is None else max_poll_interval
        )
        self.lease_seconds = lease_seconds
        self.heartbeat_interval = heartbeat
        self.shutdown_timeout = shutdown_timeout
        self.job_timeout = job_timeout
        self.worker_id = worker_id if worker_id is not None else default_worker_id()
        self._listener = listener
        self._claim_threshold = max(1, math.ceil(concurrency / 2))
        # By lease, not job id: after its lease expired, a job can come back to the same
        # worker while the stale run is still being cancelled.
        self._handler_tasks: dict[JobLease, asyncio.Task[None]] = {}
        self._counts: dict[WorkerEvent, int] = dict.fromkeys(WorkerEvent, 0)
        self._claimed = 0
        self._running = False

    @property
    def stats(self) -> WorkerStats:
        """Counts so far; safe to read while `run` is going."""
        c = self._counts
        return WorkerStats(
            worker_id=self.worker_id,
            claimed=self._claimed,
            done=c[WorkerEvent.DONE],
            retrying=c[WorkerEvent.RETRYING],
            dead=c[WorkerEvent.DEAD],
            lost=c[WorkerEvent.LOST],
            released=c[WorkerEvent.RELEASED],
            in_flight=len(self._handler_tasks),
        )

    async def run(self, stop: asyncio.Event) -> WorkerStats:
        """Work until `stop` is set, then shut down gracefully; return the final counts."""
        if self._running:
            raise RuntimeError("this worker is already running")
        self._running = True
        loop = asyncio.get_running_loop()
        jobs: set[asyncio.Task[None]] = set()
        stop_waiter = asyncio.create_task(stop.wait())
        idle_claims = 0
        next_claim_at = last_claim_at = loop.time()
        try:
            while not stop.is_set():
                now = loop.time()
                free = self.concurrency - len(jobs)
                if (
                    free > 0
                    and now >= next_claim_at
                    and (
                        not jobs
                        or free >= self._claim_threshold
                        or now >= last_claim_at + self.poll_interval
                    )
                ):
                    claimed = await self._claim_unless_stopping(free, stop_waiter)
                    last_claim_at = now = loop.time()
                    for job in claimed:
                        jobs.add(asyncio.create_task(self._execute(job), name=f"job-{job.id}"))
                    idle_claims = 0 if claimed else idle_claims + 1
                    next_claim_at = now if claimed else now + self.idle_delay(idle_claims)
                    free = self.concurrency - len(jobs)
                timeout: float | None = None
                if free > 0:
                    wake = max(next_claim_at, now)
                    if jobs and free < self._claim_threshold:
                        wake = max(wake, last_claim_at + self.poll_interval)
                    timeout = max(wake - now, 0.0)
                done, _ = await asyncio.wait(
                    {stop_waiter, *jobs}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                self._collect(jobs.intersection(done), jobs)
            await self._shut_down(jobs)
        finally:
            stop_waiter.cancel()
            if jobs:  # run() itself was cancelled: do not leave handlers behind
                for task in self._handler_tasks.values():
                    task.cancel()
                await asyncio.wait(jobs)
                self._collect(set(jobs), jobs)
            self._running = False
        return self.stats

    def idle_delay(self, idle_claims: int) -> float:
        """Seconds to wait after `idle_claims` empty claims in a row: `poll_interval`,
        doubling each time up to `max_poll_interval`, less up to half for jitter (so idle
        workers started together do not poll in lockstep)."""
        ceiling = min(self.max_poll_interval, self.poll_interval * 2.0 ** max(idle_claims - 1, 0))
        return ceiling * random.uniform(0.5, 1.0)

    async def _claim_unless_stopping(
        self, limit: int, stop_waiter: asyncio.Task[Any]
    ) -> list[ClaimedJob]:
        # A claim can wait for a lock (on SQLite, any open write transaction holds it);
        # a stop must not wait for it indefinitely.
        claim = asyncio.create_task(self._claim(limit))
        try:
            await asyncio.wait({claim, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not claim.done():
                await asyncio.wait({claim}, timeout=self.shutdown_timeout)
        except asyncio.CancelledError:
            # run() itself is being cancelled: leave no claim running, no job leased.
            for job in await self._abandon(claim):
                await self._settle(job, self.queue.release(job), WorkerEvent.RELEASED)
            raise
        return await self._abandon(claim)

    @staticmethod
    async def _abandon(claim: asyncio.Task[list[ClaimedJob]]) -> list[ClaimedJob]:
        """The claim's jobs, cancelling it first if it is still running.

        A cancelled claim rolls back, unless its COMMIT was already on its way: then its
        jobs are leased to us unseen, and go back to the queue when the lease expires.
        """
        if not claim.done():
            claim.cancel()
            await asyncio.wait({claim})
        return [] if claim.cancelled() else claim.result()

    async def _claim(self, limit: int) -> list[ClaimedJob]:
        try:
            claimed = await self.queue.claim(
                self.worker_id, limit=limit, lease_seconds=self.lease_seconds
            )
        except Exception:
            # The database may be down or busy; the loop backs off as if idle and retries.
            log.exception("worker %s could not claim jobs", self.worker_id)
            return []
        self._claimed += len(claimed)
        return claimed

    def _collect(self, finished: set[asyncio.Task[None]], jobs: set[asyncio.Task[None]]) -> None:
        for task in finished:
            jobs.discard(task)
            if not task.cancelled() and (error := task.exception()) is not None:
                log.error("worker %s: job task failed", self.worker_id, exc_info=error)

    async def _shut_down(self, jobs: set[asyncio.Task[None]]) -> None:
        if not jobs:
            return
        _, pending = await asyncio.wait(jobs, timeout=self.shutdown_timeout)
        if pending:
            # Past the deadline: cancel the handlers still running; their wrappers then
            # hand the jobs back. Jobs already recording their outcome are left to finish.
            for task in self._handler_tasks.values():
                task.cancel()
            await asyncio.wait(pending)
        self._collect(set(jobs), jobs)

    def _emit(self, event: WorkerEvent, job: ClaimedJob) -> None:
        self._counts[event] += 1
        if self._listener is not None:
            self._listener(event, job)

    async def _execute(self, job: ClaimedJob) -> None:
        self._emit(WorkerEvent.STARTED, job)
        handler = self.handlers.get(job.kind)
        if handler is None:
            known = ", ".join(sorted(self.handlers)) or "none"
            error = f"no handler for job kind {job.kind!r} (this worker knows: {known})"
            await self._settle(job, self.queue.fail(job, error, permanent=True))
            return
        task = asyncio.create_task(self._perform(job, handler), name=f"handler-{job.id}")
        self._handler_tasks[job.lease] = task
        lease_lost = False
        try:
            while not lease_lost:
                done, _ = await asyncio.wait({task}, timeout=self.heartbeat_interval)
                if done:
                    break
                lease_lost = not await self._extend(job)
            if lease_lost:
                # Someone else runs this job now; our transaction could only be refused.
                task.cancel()
                await asyncio.wait({task})
        finally:
            del self._handler_tasks[job.lease]
        if lease_lost or (not task.cancelled() and isinstance(task.exception(), JobLeaseLost)):
            self._emit(WorkerEvent.LOST, job)
        elif task.cancelled():
            await self._settle(job, self.queue.release(job), WorkerEvent.RELEASED)
        elif (exc := task.exception()) is not None:
            permanent = isinstance(exc, PermanentJobFailure)
            await self._settle(job, self.queue.fail(job, exc, permanent=permanent))
        else:
            self._emit(WorkerEvent.DONE, job)

    async def _perform(self, job: ClaimedJob, handler: JobHandler) -> None:
        async def work(session: AsyncSession) -> None:
            await handler(job, session)
            if not await self.queue.complete(job, session=session):
                raise JobLeaseLost(job.id)  # rolls the handler's effect back

        await run_in_transaction(self.queue.sessions, work, timeout=self.job_timeout)

    async def _extend(self, job: ClaimedJob) -> bool:
        try:
            extended = await self.queue.extend(job, self.lease_seconds)
        except Exception:
            # Keep going: the next heartbeat tries again, and the lease has time left.
            log.exception("worker %s could not renew the lease of job %s", self.worker_id, job.id)
            return True
        if extended:
            self._emit(WorkerEvent.EXTENDED, job)
        return extended

    async def _settle(
        self,
        job: ClaimedJob,
        update: Awaitable[bool | JobStatus | None],
        success: WorkerEvent | None = None,
    ) -> None:
        try:
            result = await update
        except Exception:
            # The lease expires and another run settles the job; handlers are idempotent.
            log.exception(
                "worker %s could not record the outcome of job %s", self.worker_id, job.id
            )
            self._emit(WorkerEvent.LOST, job)
            return
        if result is JobStatus.DEAD:
            self._emit(WorkerEvent.DEAD, job)
        elif result is JobStatus.QUEUED:
            self._emit(WorkerEvent.RETRYING, job)
        elif result is True and success is not None:
            self._emit(success, job)
        else:
            self._emit(WorkerEvent.LOST, job)


async def drain(worker: Worker) -> WorkerStats:
    """Run `worker` until no job is due or running (here or in any other worker), then stop
    it gracefully and return its counts. Jobs waiting out a retry backoff are left queued.

    A running job under another worker's expired lease counts as running, so it is
    reclaimed and finished before this returns; one under a live lease is waited for.
    """
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop), name=f"drain-{worker.worker_id}")
    try:
        while not run.done():
            queue = await worker.queue.stats()
            if queue.due == 0 and queue.running == 0 and worker.stats.in_flight == 0:
                stop.set()
                break
            await asyncio.wait({run}, timeout=worker.poll_interval)
        return await run
    finally:
        if not run.done():
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
