"""Batch settlement: a claimed batch's handlers and completions, in as few transactions as
it can.

The handlers run one after another in one session, and one lease-checked UPDATE marks them
all done in that same transaction, with any failures recorded beside them. The effects and
the completions commit together, so a job's database effect happens exactly once even when
a stalled worker's lease is taken over: if any lease of the batch is gone, the transaction
rolls back and the batch runs again without that job (refused per job, never half applied).

A handler that fails rolls the transaction back too (optimistic: no savepoint costs a
round trip while all goes well); the batch then runs again with the failure recorded, and
from then on with a savepoint around each handler, so another failure costs only itself.
A batch's transaction also ends after `batch_seconds`, so slow handlers do not keep
SQLite's write lock (and every other writer) waiting for the whole batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.db_errors import is_transient
from services.errors import JobLeaseLost, OperationTimeout, PermanentJobFailure
from services.job_handler import JobHandler
from services.jobs import JobQueue
from services.results import ClaimedJob
from services.transactions import deadline, run_in_transaction
from services.worker.events import FAILURE_EVENTS, WorkerEvent, WorkerTally
from services.worker.heartbeat import keep_leases
from services.worker.shutdown import RunningTransactions

log = logging.getLogger(__name__)


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


@dataclass(frozen=True, slots=True)
class SettlementRules:
    """How a worker settles its batches (the Worker's arguments of the same names)."""

    batch_seconds: float
    job_timeout: float | None
    lease_seconds: float
    heartbeat_interval: float


class BatchSettlement:
    """Settles claimed batches for one worker; `retry_due(loop_time)` hears when a job it
    queued for a retry is due, so the worker claims then rather than a poll later."""

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, JobHandler],
        rules: SettlementRules,
        tally: WorkerTally,
        transactions: RunningTransactions,
        retry_due: Callable[[float], None],
    ) -> None:
        self.queue = queue
        self.handlers = handlers
        self.rules = rules
        self.tally = tally
        self.transactions = transactions
        self._retry_due = retry_due

    async def settle(self, jobs: list[ClaimedJob]) -> None:
        """Settle a claimed batch: transactions until no job of it is left pending."""
        batch = _Batch(pending=list(jobs))
        key = id(batch)

        def lost(job_ids: set[int]) -> None:
            batch.lost |= job_ids
            self.transactions.cancel(key)

        heartbeat = asyncio.create_task(
            keep_leases(
                self.queue,
                lambda: list(batch.pending),
                interval=self.rules.heartbeat_interval,
                lease_seconds=self.rules.lease_seconds,
                tally=self.tally,
                lost=lost,
            )
        )
        try:
            while batch.pending:
                attempt = asyncio.create_task(self._attempt(batch))
                with self.transactions.tracking(key, attempt):
                    await asyncio.wait({attempt})
                if attempt.cancelled():
                    self._drop_lost(batch)
                    if not self.transactions.cancelling:
                        continue  # the heartbeat cancelled it: run the rest
                    # Shutdown: hand back what did not commit.
                    for job in batch.pending:
                        await self.tally.record(job, self.queue.release(job), WorkerEvent.RELEASED)
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
                self.tally.emit(WorkerEvent.DONE, job)
            for job, status in settled.failed:
                batch.failures.pop(job.id, None)
                self.tally.emit(FAILURE_EVENTS.get(status, WorkerEvent.LOST), job)
            if settled.retry_at is not None:
                wait = max((settled.retry_at - self.queue.now()).total_seconds(), 0.0)
                self._retry_due(asyncio.get_running_loop().time() + wait)
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
                self.tally.worker_id,
                len(batch.pending),
                exc_info=error,
            )
            for job in batch.pending:
                self.tally.emit(WorkerEvent.LOST, job)
            batch.pending.clear()

    def _drop_lost(self, batch: _Batch) -> None:
        for job in batch.pending:
            if job.id in batch.lost:
                self.tally.emit(WorkerEvent.LOST, job)
        batch.pending = [job for job in batch.pending if job.id not in batch.lost]
        batch.lost.clear()

    async def _attempt(self, batch: _Batch) -> _Settled:
        """One transaction of the batch: failures known from earlier attempts recorded,
        handlers run in order until `batch_seconds` have passed, completions checked."""
        loop = asyncio.get_running_loop()

        async def work(session: AsyncSession) -> _Settled:
            settled = _Settled()
            batch.current = None
            ends_at = loop.time() + self.rules.batch_seconds
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
                    self.tally.emit(WorkerEvent.STARTED, job)
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
            async with deadline(self.rules.job_timeout):
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


def _no_handler(kind: str, handlers: Mapping[str, JobHandler]) -> str:
    known = ", ".join(sorted(handlers)) or "none"
    return f"no handler for job kind {kind!r} (this worker knows: {known})"
