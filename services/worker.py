"""Use case: run queued jobs, in batches, until told to stop.

A claimed batch settles in as few transactions as it can: its handlers run one after
another in one session, and one lease-checked UPDATE marks them all done in that same
transaction, with any failures recorded beside them. The effects and the completions
commit together, so a job's database effect happens exactly once even when a stalled
worker's lease is taken over: if any lease of the batch is gone, the transaction rolls
back and the batch runs again without that job (refused per job, never half applied).

A handler that fails rolls the transaction back too (optimistic: no savepoint costs a
round trip while all goes well); the batch then runs again with the failure recorded, and
from then on with a savepoint around each handler, so another failure costs only itself.
A batch's transaction also ends after `batch_seconds`, so slow handlers do not keep
SQLite's write lock (and every other writer) waiting for the whole batch.

An idle worker holds no session: it waits for a wake-up (db/wakeups.py: NOTIFY on
PostgreSQL, an in-process signal or PRAGMA data_version on SQLite) and claims at once; it
polls only every `max_poll_interval`, in case a wake-up was lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from db.wakeups import Wakeups
from models import JobStatus
from services import validation
from services.db_errors import is_transient
from services.errors import InvalidInput, JobLeaseLost, OperationTimeout, PermanentJobFailure
from services.job_handler import JobHandler
from services.jobs import JobQueue
from services.results import ClaimedJob, WorkerStats
from services.transactions import deadline, run_in_transaction

log = logging.getLogger(__name__)

MAX_CONCURRENCY: Final = 1000
MAX_BATCH_SIZE: Final = 1000


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


class _HandlerFailed(Exception):
    """A handler raised (or timed out): roll the batch back, run it again without it."""

    def __init__(self, job: ClaimedJob, error: BaseException) -> None:
        super().__init__(job.id)
        self.job = job
        self.error = error


class _LeasesLost(Exception):
    """The completion found some leases gone: their effects must not commit."""

    def __init__(self, job_ids: set[int]) -> None:
        super().__init__(sorted(job_ids))
        self.job_ids = job_ids


@dataclass(slots=True)
class _Batch:
    """A claimed batch while it settles: the jobs not yet committed, failures already
    known (recorded in the next transaction, not run again), jobs whose lease is gone."""

    pending: list[ClaimedJob]
    failures: dict[int, BaseException | str] = field(default_factory=dict)
    lost: set[int] = field(default_factory=set)
    started: set[int] = field(default_factory=set)
    savepoints: bool = False
    current: ClaimedJob | None = None


@dataclass(slots=True)
class _Settled:
    """What one transaction of a batch committed."""

    done: list[ClaimedJob] = field(default_factory=list)
    failed: list[tuple[ClaimedJob, str | None]] = field(default_factory=list)
    retry_at: datetime | None = None


def default_worker_id() -> str:
    """host:pid:random, unique enough that two workers never share leases."""
    return f"{socket.gethostname()[:150]}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    """Claims batches of up to `batch_size` jobs, at most `concurrency` batches at a time.

    - Claims whenever a batch slot is free and it was woken (a job was committed), or its
      last claim found work; otherwise it polls: every `max_poll_interval` while its
      wake-ups are live, and from `poll_interval` doubling up to that while they are not.
      `wakeups=False` turns them off (polling only). `listen_url` is where to LISTEN on
      PostgreSQL (DB_LISTEN_URL; default: the engine's own URL).
    - Settles each batch in transactions of at most `batch_seconds` (one at least), the
      handlers' effects and the jobs' completions together; `job_timeout` (seconds)
      bounds each handler.
    - Renews the leases of a batch's unsettled jobs every `heartbeat_interval` seconds
      (default: a third of `lease_seconds`); a job whose lease was taken over is dropped
      from the batch (its transaction rolled back first if it was running).
    - A handler that raises (or times out) fails its job: retry with backoff, or dead on
      the last attempt, at once for `PermanentJobFailure`; an unknown kind goes dead.
      Neither stops the worker.
    - On `stop`, in-flight batches get `shutdown_timeout` seconds to finish; the rest are
      cancelled (their transactions roll back) and their jobs handed back to the queue.
    """

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, JobHandler],
        *,
        concurrency: int = 4,
        batch_size: int = 50,
        batch_seconds: float = 0.05,
        poll_interval: float = 1.0,
        lease_seconds: float = 30.0,
        max_poll_interval: float | None = None,
        heartbeat_interval: float | None = None,
        shutdown_timeout: float = 10.0,
        job_timeout: float | None = None,
        worker_id: str | None = None,
        listener: Listener | None = None,
        wakeups: bool = True,
        listen_url: str | None = None,
    ) -> None:
        validation.bounded_int(concurrency, "concurrency", MAX_CONCURRENCY)
        validation.bounded_int(batch_size, "batch_size", MAX_BATCH_SIZE)
        validation.seconds(batch_seconds, "batch_seconds")
        validation.seconds(poll_interval, "poll_interval")
        validation.seconds(lease_seconds, "lease_seconds")
        if job_timeout is not None:
            validation.seconds(job_timeout, "job_timeout")
        if max_poll_interval is not None:
            validation.seconds(max_poll_interval, "max_poll_interval")
        validation.seconds(shutdown_timeout, "shutdown_timeout", zero=True)
        heartbeat = lease_seconds / 3 if heartbeat_interval is None else heartbeat_interval
        validation.seconds(heartbeat, "heartbeat_interval")
        if not heartbeat < lease_seconds:
            raise InvalidInput("heartbeat_interval must be positive and shorter than the lease")
        self.queue = queue
        self.handlers = dict(handlers)
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.batch_seconds = batch_seconds
        self.poll_interval = poll_interval
        self.max_poll_interval = max(
            poll_interval, 30 * poll_interval if max_poll_interval is None else max_poll_interval
        )
        self.lease_seconds = lease_seconds
        self.heartbeat_interval = heartbeat
        self.shutdown_timeout = shutdown_timeout
        self.job_timeout = job_timeout
        self.worker_id = worker_id if worker_id is not None else default_worker_id()
        self.wakeups: Wakeups | None = None
        self._use_wakeups = wakeups
        self._listen_url = listen_url
        self._listener = listener
        self._woken = asyncio.Event()
        # The transaction each batch is in right now, by batch: shutdown and lease losses
        # cancel it (and only it; the batch's own task then settles the rest).
        self._attempts: dict[int, asyncio.Task[_Settled]] = {}
        self._in_flight = 0
        self._retry_due: float | None = None  # loop time when a job this worker retried is due
        self._cancelling = False  # past the shutdown deadline, or run() cancelled
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
            in_flight=self._in_flight,
        )

    def wake(self) -> None:
        """Claim at the next chance, as if a job had just been committed."""
        self._woken.set()

    async def run(self, stop: asyncio.Event) -> WorkerStats:
        """Work until `stop` is set, then shut down gracefully; return the final counts."""
        if self._running:
            raise RuntimeError("this worker is already running")
        self._running = True
        self._cancelling = False
        self._woken = asyncio.Event()
        engine = self.queue.sessions.kw.get("bind")
        try:
            if self._use_wakeups and isinstance(engine, AsyncEngine):
                self.wakeups = Wakeups(
                    engine,
                    self.wake,
                    poll_interval=self.poll_interval,
                    listen_url=self._listen_url,
                )
                async with self.wakeups:
                    return await self._loop(stop)
            return await self._loop(stop)
        finally:
            self._running = False

    async def _loop(self, stop: asyncio.Event) -> WorkerStats:
        loop = asyncio.get_running_loop()
        batches: set[asyncio.Task[None]] = set()
        stop_waiter = asyncio.create_task(stop.wait())
        woken_waiter: asyncio.Task[Any] | None = None
        idle_claims = 0
        next_claim_at = loop.time()
        try:
            while not stop.is_set():
                now = loop.time()
                free = len(batches) < self.concurrency
                if free and (self._woken.is_set() or now >= next_claim_at):
                    # Cleared before the claim: a commit during it wakes us again.
                    self._woken.clear()
                    claimed = await self._claim_unless_stopping(stop_waiter)
                    now = loop.time()
                    if claimed:
                        batches.add(
                            asyncio.create_task(
                                self._execute(claimed), name=f"job-batch-{claimed[0].id}"
                            )
                        )
                        idle_claims, next_claim_at = 0, now
                    else:
                        idle_claims += 1
                        next_claim_at = now + self._idle_wait(idle_claims)
                    free = len(batches) < self.concurrency
                waiting: set[asyncio.Task[Any]] = {stop_waiter, *batches}
                timeout: float | None = None
                if free:
                    if woken_waiter is None or woken_waiter.done():
                        woken_waiter = asyncio.create_task(self._woken.wait())
                    waiting.add(woken_waiter)
                    timeout = max(next_claim_at - now, 0.0)
                done, _ = await asyncio.wait(
                    waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done & batches:
                    self._collect(task, batches)
                if self._retry_due is not None:
                    next_claim_at = min(next_claim_at, self._retry_due)
                    self._retry_due = None
            await self._shut_down(batches)
        finally:
            stop_waiter.cancel()
            if woken_waiter is not None:
                woken_waiter.cancel()
            if batches:  # run() itself was cancelled: do not leave handlers behind
                self._cancelling = True
                for attempt in self._attempts.values():
                    attempt.cancel()
                await asyncio.wait(batches)
                for task in set(batches):
                    self._collect(task, batches)
        return self.stats

    def _idle_wait(self, idle_claims: int) -> float:
        if self.wakeups is not None and self.wakeups.live:
            # A commit wakes us; the poll is only for a wake-up that got lost.
            return self.max_poll_interval
        return self.idle_delay(idle_claims)

    def idle_delay(self, idle_claims: int) -> float:
        """Seconds to wait after `idle_claims` empty claims in a row, without wake-ups:
        `poll_interval`, doubling each time up to `max_poll_interval`, less up to half for
        jitter (so idle workers started together do not poll in lockstep)."""
        ceiling = min(self.max_poll_interval, self.poll_interval * 2.0 ** max(idle_claims - 1, 0))
        return ceiling * random.uniform(0.5, 1.0)

    async def _claim_unless_stopping(self, stop_waiter: asyncio.Task[Any]) -> list[ClaimedJob]:
        # A claim can wait for a lock (on SQLite, any open write transaction holds it);
        # a stop must not wait for it indefinitely.
        claim = asyncio.create_task(self._claim(self.batch_size))
        try:
            await asyncio.wait({claim, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not claim.done():
                await asyncio.wait({claim}, timeout=self.shutdown_timeout)
        except asyncio.CancelledError:
            # run() itself is being cancelled: leave no claim running, no job leased.
            for job in await self._abandon(claim):
                await self._record(job, self.queue.release(job), WorkerEvent.RELEASED)
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
        self._in_flight += len(claimed)
        return claimed

    def _collect(self, task: asyncio.Task[None], batches: set[asyncio.Task[None]]) -> None:
        batches.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("worker %s: job batch failed", self.worker_id, exc_info=error)

    async def _shut_down(self, batches: set[asyncio.Task[None]]) -> None:
        if not batches:
            return
        _, pending = await asyncio.wait(batches, timeout=self.shutdown_timeout)
        if pending:
            # Past the deadline: cancel the transactions still running; their batches
            # then hand their jobs back.
            self._cancelling = True
            for attempt in self._attempts.values():
                attempt.cancel()
            await asyncio.wait(pending)
        for task in set(batches):
            self._collect(task, batches)

    def _emit(self, event: WorkerEvent, job: ClaimedJob) -> None:
        self._counts[event] += 1
        if event in _FINAL_EVENTS:
            self._in_flight -= 1
        if self._listener is not None:
            self._listener(event, job)

    async def _execute(self, jobs: list[ClaimedJob]) -> None:
        """Settle a claimed batch: transactions until no job of it is left pending."""
        batch = _Batch(pending=list(jobs))
        key = id(batch)
        heartbeat = asyncio.create_task(self._heartbeat(batch, key))
        try:
            while batch.pending:
                attempt = asyncio.create_task(self._attempt(batch))
                self._attempts[key] = attempt
                try:
                    await asyncio.wait({attempt})
                finally:
                    del self._attempts[key]
                if attempt.cancelled():
                    self._drop_lost(batch)
                    if not self._cancelling:
                        continue  # the heartbeat cancelled it: run the rest
                    # Shutdown: hand back what did not commit.
                    for job in batch.pending:
                        await self._record(job, self.queue.release(job), WorkerEvent.RELEASED)
                    batch.pending.clear()
                    break
                self._settle(batch, attempt)
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)

    def _settle(self, batch: _Batch, attempt: asyncio.Task[_Settled]) -> None:
        error = attempt.exception()
        if error is None:
            settled = attempt.result()
            committed = {job.id for job in settled.done} | {job.id for job, _ in settled.failed}
            batch.pending = [job for job in batch.pending if job.id not in committed]
            for job in settled.done:
                self._emit(WorkerEvent.DONE, job)
            for job, status in settled.failed:
                batch.failures.pop(job.id, None)
                self._emit(_FAILURE_EVENTS.get(status, WorkerEvent.LOST), job)
            if settled.retry_at is not None:
                # The loop reads it: claim again when the retry is due, not a poll later.
                wait = max((settled.retry_at - self.queue.now()).total_seconds(), 0.0)
                due = asyncio.get_running_loop().time() + wait
                self._retry_due = due if self._retry_due is None else min(self._retry_due, due)
        elif isinstance(error, _HandlerFailed):
            batch.failures[error.job.id] = error.error
            batch.savepoints = True
        elif isinstance(error, _LeasesLost):
            batch.lost |= error.job_ids
            self._drop_lost(batch)
        elif batch.current is not None:
            # The database failed under a handler (busy through every retry, say).
            batch.failures[batch.current.id] = error
            batch.savepoints = True
        else:
            # The completion or the commit failed: the leases expire and another run
            # settles these jobs; handlers are idempotent.
            log.error(
                "worker %s could not settle a batch of %d jobs",
                self.worker_id,
                len(batch.pending),
                exc_info=error,
            )
            for job in batch.pending:
                self._emit(WorkerEvent.LOST, job)
            batch.pending.clear()

    def _drop_lost(self, batch: _Batch) -> None:
        for job in batch.pending:
            if job.id in batch.lost:
                self._emit(WorkerEvent.LOST, job)
        batch.pending = [job for job in batch.pending if job.id not in batch.lost]
        batch.lost.clear()

    async def _attempt(self, batch: _Batch) -> _Settled:
        """One transaction of the batch: failures known from earlier attempts recorded,
        handlers run in order until `batch_seconds` have passed, completions checked."""
        loop = asyncio.get_running_loop()

        async def work(session: AsyncSession) -> _Settled:
            settled = _Settled()
            batch.current = None
            ends_at = loop.time() + self.batch_seconds
            for job in batch.pending:
                if (settled.done or settled.failed) and loop.time() >= ends_at:
                    break
                known = batch.failures.get(job.id)
                handler = self.handlers.get(job.kind)
                if known is None and handler is None:
                    known = _no_handler(job.kind, self.handlers)
                if known is not None:
                    await self._fail_in(session, job, known, settled)
                    continue
                assert handler is not None
                if job.id not in batch.started:
                    batch.started.add(job.id)
                    self._emit(WorkerEvent.STARTED, job)
                batch.current = job
                error = await self._run_handler(handler, job, session, batch.savepoints)
                batch.current = None
                if error is None:
                    settled.done.append(job)
                else:
                    await self._fail_in(session, job, error, settled)
            held = await self.queue.complete_many(settled.done, session)
            if len(held) != len(settled.done):
                raise _LeasesLost({job.id for job in settled.done} - held)
            return settled

        return await run_in_transaction(self.queue.sessions, work)

    async def _run_handler(
        self, handler: JobHandler, job: ClaimedJob, session: AsyncSession, savepoint: bool
    ) -> BaseException | None:
        """Run one handler; its error if it failed and a savepoint kept the rest."""
        try:
            async with deadline(self.job_timeout):
                if not savepoint:
                    await handler(job, session)
                    return None
                async with session.begin_nested():
                    await handler(job, session)
                return None
        except Exception as exc:
            if is_transient(exc):
                raise  # the whole transaction runs again (run_in_transaction)
            if isinstance(exc, JobLeaseLost):
                raise _LeasesLost({job.id}) from exc
            if savepoint and not isinstance(exc, OperationTimeout):
                # Rolled back to the savepoint; the rest of the batch stands.
                return exc
            raise _HandlerFailed(job, exc) from exc

    async def _fail_in(
        self,
        session: AsyncSession,
        job: ClaimedJob,
        error: BaseException | str,
        settled: _Settled,
    ) -> None:
        # A string is the worker's own verdict (no handler for the kind): final at once.
        permanent = isinstance(error, PermanentJobFailure | str)
        status, run_at = await self.queue.record_failure(
            job, error, permanent=permanent, session=session
        )
        settled.failed.append((job, status))
        if run_at is not None:
            settled.retry_at = run_at if settled.retry_at is None else min(settled.retry_at, run_at)

    async def _heartbeat(self, batch: _Batch, key: int) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            jobs = list(batch.pending)
            if not jobs:
                continue
            try:
                held = await self.queue.extend_many(jobs, self.lease_seconds)
            except Exception:
                # Keep going: the next heartbeat tries again, and the leases have time left.
                log.exception("worker %s could not renew its leases", self.worker_id)
                continue
            for job in jobs:
                if job.id in held:
                    self._emit(WorkerEvent.EXTENDED, job)
            lost = {job.id for job in jobs} - held
            if lost:
                # Someone else runs these now; our transaction could only be refused.
                batch.lost |= lost
                attempt = self._attempts.get(key)
                if attempt is not None:
                    attempt.cancel()

    async def _record(
        self,
        job: ClaimedJob,
        update: Awaitable[bool | str | None],
        success: WorkerEvent,
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
        self._emit(success if result is True else WorkerEvent.LOST, job)


_FINAL_EVENTS: Final = frozenset(
    {
        WorkerEvent.DONE,
        WorkerEvent.RETRYING,
        WorkerEvent.DEAD,
        WorkerEvent.LOST,
        WorkerEvent.RELEASED,
    }
)
_FAILURE_EVENTS: Final[Mapping[str | None, WorkerEvent]] = {
    JobStatus.DEAD: WorkerEvent.DEAD,
    JobStatus.QUEUED: WorkerEvent.RETRYING,
}


def _no_handler(kind: str, handlers: Mapping[str, JobHandler]) -> str:
    known = ", ".join(sorted(handlers)) or "none"
    return f"no handler for job kind {kind!r} (this worker knows: {known})"


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
