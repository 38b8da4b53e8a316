"""Scheduling: when a worker claims a batch, and how many batches it runs at once.

An idle worker holds no session: it waits for a wake-up (db/wakeups.py: NOTIFY on
PostgreSQL, an in-process signal or PRAGMA data_version on SQLite) and claims at once; it
polls only every `max_poll_interval`, in case a wake-up was lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncEngine

from db.wakeups import Wakeups
from services import validation
from services.backoff import Backoff
from services.errors import InvalidInput
from services.job_handler import JobHandler
from services.jobs import JobQueue
from services.results import ClaimedJob, WorkerStats
from services.worker.events import Listener, WorkerEvent, WorkerTally
from services.worker.settlement import BatchSettlement, SettlementRules
from services.worker.shutdown import RunningTransactions, abandon, cancel_batches, shut_down

log = logging.getLogger(__name__)

MAX_CONCURRENCY: Final = 1000
MAX_BATCH_SIZE: Final = 1000


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
      bounds each handler (services/worker/settlement.py).
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
        self._idle_backoff = Backoff(poll_interval, self.max_poll_interval)
        self._woken = asyncio.Event()
        self._retry_due: float | None = None  # loop time when a job this worker retried is due
        self._tally = WorkerTally(self.worker_id, listener)
        self._transactions = RunningTransactions()
        self._running = False

    @property
    def stats(self) -> WorkerStats:
        """Counts so far; safe to read while `run` is going."""
        return self._tally.stats()

    def wake(self) -> None:
        """Claim at the next chance, as if a job had just been committed."""
        self._woken.set()

    async def run(self, stop: asyncio.Event) -> WorkerStats:
        """Work until `stop` is set, then shut down gracefully; return the final counts."""
        if self._running:
            raise RuntimeError("this worker is already running")
        self._running = True
        self._transactions = RunningTransactions()
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

    def _settlement(self) -> BatchSettlement:
        rules = SettlementRules(
            batch_seconds=self.batch_seconds,
            job_timeout=self.job_timeout,
            lease_seconds=self.lease_seconds,
            heartbeat_interval=self.heartbeat_interval,
        )
        return BatchSettlement(
            self.queue, self.handlers, rules, self._tally, self._transactions, self._retry_at
        )

    def _retry_at(self, loop_time: float) -> None:
        # The loop reads it: claim again when the retry is due, not a poll later.
        self._retry_due = loop_time if self._retry_due is None else min(self._retry_due, loop_time)

    async def _loop(self, stop: asyncio.Event) -> WorkerStats:
        loop = asyncio.get_running_loop()
        settlement = self._settlement()
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
                                settlement.settle(claimed), name=f"job-batch-{claimed[0].id}"
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
            await shut_down(batches, self.shutdown_timeout, self._transactions, self._collect)
        finally:
            stop_waiter.cancel()
            if woken_waiter is not None:
                woken_waiter.cancel()
            await cancel_batches(batches, self._transactions, self._collect)
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
        return self._idle_backoff.delay(idle_claims)

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
            for job in await abandon(claim):
                await self._tally.record(job, self.queue.release(job), WorkerEvent.RELEASED)
            raise
        return await abandon(claim)

    async def _claim(self, limit: int) -> list[ClaimedJob]:
        try:
            claimed = await self.queue.claim(
                self.worker_id, limit=limit, lease_seconds=self.lease_seconds
            )
        except Exception:
            # The database may be down or busy; the loop backs off as if idle and retries.
            log.exception("worker %s could not claim jobs", self.worker_id)
            return []
        self._tally.claimed(len(claimed))
        return claimed

    def _collect(self, task: asyncio.Task[None], batches: set[asyncio.Task[None]]) -> None:
        batches.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("worker %s: job batch failed", self.worker_id, exc_info=error)


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
