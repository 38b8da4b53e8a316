"""The worker: concurrent handlers, leases, retries, dead letters and graceful shutdown."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import DatabaseSettings, create_engine, create_session_factory, pool_status
from models import Job, Notification
from services import (
    TRANSFER_COMPLETED,
    Backoff,
    ClaimedJob,
    JobHandler,
    JobQueue,
    TransferNotifier,
    TransferRequest,
    TransferService,
    Worker,
    WorkerEvent,
    WorkerStats,
)
from services.transactions import run_in_transaction
from tests.support.jobs import FakeClock, StatementLog
from tests.support.ledger import open_account
from tests.support.pgbouncer import through_pgbouncer
from tests.support.workers import Events, running_worker

pytestmark = through_pgbouncer


def _gate(*, write_first: bool = False) -> tuple[asyncio.Event, asyncio.Event, JobHandler]:
    """A handler that signals `started`, waits for `proceed`, and writes a notification
    (a real effect, to see whether it commits): after waiting, or before with
    `write_first`, in which case it waits inside an open transaction."""
    started, proceed = asyncio.Event(), asyncio.Event()

    async def handler(job: ClaimedJob, session: AsyncSession) -> None:
        if write_first:
            await TransferNotifier()(job, session)
        started.set()
        await proceed.wait()
        if not write_first:
            await TransferNotifier()(job, session)

    return started, proceed, handler


class _StallingQueue(JobQueue):
    """A queue whose lease renewals wait while the test holds `stalled` (a renewal already
    under way finishes first): a worker whose heartbeat stalled."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> None:
        super().__init__(sessions, clock=clock)
        self.stalled = asyncio.Lock()

    async def extend_many(self, jobs: Sequence[ClaimedJob], lease_seconds: float) -> set[int]:
        async with self.stalled:
            return await super().extend_many(jobs, lease_seconds)


async def _notification_count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Notification)) or 0)


async def _job(sessions: async_sessionmaker[AsyncSession], job_id: int) -> Job:
    async with sessions() as session:
        job = await session.get(Job, job_id)
    assert job is not None
    return job


@contextmanager
def _no_task_left_behind() -> Iterator[None]:
    before = asyncio.all_tasks()
    yield
    left = {t for t in asyncio.all_tasks() - before if not t.done()}
    names = [t.get_name() for t in left]
    assert not [n for n in names if n.startswith(("job-", "handler-"))], names


async def _one_deposit_job(sessions: async_sessionmaker[AsyncSession]) -> int:
    await open_account(sessions, balance=100)  # a deposit: one transfer.completed job
    (job_id,) = await _job_ids(sessions)
    return job_id


async def _job_ids(sessions: async_sessionmaker[AsyncSession]) -> list[int]:
    async with sessions() as session:
        return list((await session.scalars(select(Job.id).order_by(Job.id))).all())


async def test_workers_on_separate_engines_drain_every_job_exactly_once(
    settings: DatabaseSettings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    account = await open_account(sessions)
    total = 520
    await TransferService(sessions).transfer_many(
        [TransferRequest.of(None, account.id, 1) for _ in range(total)]
    )
    job_ids = await _job_ids(sessions)
    assert len(job_ids) == total

    runs: Counter[int] = Counter()
    notifier = TransferNotifier()

    async def counting(job: ClaimedJob, session: AsyncSession) -> None:
        runs[job.id] += 1
        await notifier(job, session)

    stop = asyncio.Event()
    events = Events(stop)
    events.stop_when(lambda counts: counts[WorkerEvent.DONE] >= total)
    # Separate engines over one database, as separate processes would have.
    engines = [create_engine(settings) for _ in range(3)]
    try:
        workers = [
            Worker(
                JobQueue(create_session_factory(engine)),
                {TRANSFER_COMPLETED: counting},
                concurrency=4,
                poll_interval=0.05,
                listener=events,
            )
            for engine in engines
        ]
        with _no_task_left_behind():
            stats = await asyncio.gather(*(w.run(stop) for w in workers))
        assert all(pool_status(engine).checked_out == 0 for engine in engines)
    finally:
        for engine in engines:
            await engine.dispose()

    # Every job's handler ran. A handler may run more than once: a transient error reruns its
    # batch's whole transaction, rolled back first. What happens exactly once is what
    # commits: one claim per job and one effect per transfer, checked below.
    assert sorted(runs) == job_ids
    assert sum(s.claimed for s in stats) == total
    assert sum(s.done for s in stats) == total
    assert await _notification_count(sessions) == total
    async with sessions() as session:
        rows = (await session.execute(select(Job.status, Job.attempts).distinct())).all()
    assert [tuple(r) for r in rows] == [("done", 1)]


async def test_a_long_job_renews_its_lease_and_is_not_reclaimed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    job_id = await _one_deposit_job(sessions)
    clock = FakeClock()
    queue = JobQueue(sessions, clock=clock)
    started, proceed, handler = _gate()
    stop, events = asyncio.Event(), Events()
    worker = Worker(
        queue,
        {TRANSFER_COMPLETED: handler},
        concurrency=1,  # its one slot stays busy: it cannot reclaim the job itself
        lease_seconds=60,
        # Quick for the test, not back to back: on SQLite each renewal is a write, and
        # the handler's own write has to find the lock free in between.
        heartbeat_interval=0.05,
        listener=events,
    )
    async with running_worker(worker, stop) as run:
        await started.wait()
        for _ in range(3):  # 150 s in all, far past the first lease of 60 s
            clock.advance(50)
            # Two renewals after the move: the second surely read the moved clock.
            await events.wait_for(WorkerEvent.EXTENDED, events.counts[WorkerEvent.EXTENDED] + 2)
            assert await queue.claim("intruder", limit=1, lease_seconds=60) == []
        proceed.set()
        await events.wait_for(WorkerEvent.DONE)
        stop.set()
        await run
    assert (await _job(sessions, job_id)).status == "done"


async def test_a_worker_that_lost_its_lease_cancels_the_job_and_commits_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    job_id = await _one_deposit_job(sessions)
    clock = FakeClock()
    queue = _StallingQueue(sessions, clock=clock)
    started, _, handler = _gate()  # never proceeds by itself
    stop, events = asyncio.Event(), Events()
    worker = Worker(
        queue,
        {TRANSFER_COMPLETED: handler},
        concurrency=1,  # its one slot stays busy: it cannot reclaim the job itself
        lease_seconds=60,
        heartbeat_interval=0.01,
        listener=events,
    )
    async with running_worker(worker, stop) as run:
        await started.wait()  # the handler waits before it opens its transaction
        # The worker stalls past its lease and another takes the job meanwhile. Without the
        # stall a heartbeat could read the moved clock first and renew the expired lease,
        # which its owner still holds: then there is nothing to take over.
        async with queue.stalled:
            clock.advance(61)
            (taken,) = await queue.claim("other", limit=1, lease_seconds=60)
        await events.wait_for(WorkerEvent.LOST)
        stop.set()
        stats = await run
    assert (stats.lost, stats.done, stats.released) == (1, 0, 0)
    assert await _notification_count(sessions) == 0  # its half-done work rolled back
    assert (await _job(sessions, job_id)).lease_owner == "other"
    assert taken.id == job_id


async def test_a_stale_worker_s_completion_is_refused_and_its_effect_rolled_back(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    job_id = await _one_deposit_job(sessions)
    clock = FakeClock()
    queue = JobQueue(sessions, clock=clock)
    started, proceed, handler = _gate()
    stop, events = asyncio.Event(), Events()
    # A heartbeat far slower than the test: the worker cannot notice the takeover early.
    worker = Worker(
        queue,
        {TRANSFER_COMPLETED: handler},
        concurrency=1,
        lease_seconds=60,
        heartbeat_interval=59,
        listener=events,
    )
    async with running_worker(worker, stop) as run:
        await started.wait()
        clock.advance(61)
        (taken,) = await queue.claim("other", limit=1, lease_seconds=60)
        proceed.set()  # the stale worker finishes its handler and tries to complete
        await events.wait_for(WorkerEvent.LOST)
        stop.set()
        await run
    assert await _notification_count(sessions) == 0

    async def finish(session: AsyncSession) -> bool:
        await TransferNotifier()(taken, session)
        return await queue.complete(taken, session=session)

    assert await run_in_transaction(sessions, finish) is True
    assert await _notification_count(sessions) == 1  # the effect, exactly once
    assert (await _job(sessions, job_id)).status == "done"


async def test_a_failing_handler_retries_then_goes_dead_and_the_worker_carries_on(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    queue = JobQueue(sessions, retry=Backoff(base_seconds=0))
    bad = await queue.enqueue("bad", {}, max_attempts=3)
    good = await queue.enqueue("good", {})
    attempts: list[int] = []

    async def failing(job: ClaimedJob, session: AsyncSession) -> None:
        attempts.append(job.attempt)
        raise RuntimeError(f"boom on attempt {job.attempt}")

    async def fine(job: ClaimedJob, session: AsyncSession) -> None:
        return None

    stop = asyncio.Event()
    events = Events(stop)
    events.stop_when(lambda c: c[WorkerEvent.DEAD] >= 1 and c[WorkerEvent.DONE] >= 1)
    worker = Worker(queue, {"bad": failing, "good": fine}, poll_interval=0.01, listener=events)
    stats = await worker.run(stop)
    assert attempts == [1, 2, 3]
    assert (stats.retrying, stats.dead, stats.done) == (2, 1, 1)
    dead = await _job(sessions, bad.id)
    assert (dead.status, dead.attempts, dead.last_error) == (
        "dead",
        3,
        "RuntimeError: boom on attempt 3",
    )
    assert (await _job(sessions, good.id)).status == "done"


async def test_an_unknown_job_kind_goes_dead_with_a_clear_error(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    queue = JobQueue(sessions)
    job = await queue.enqueue("report.generate", {})
    stop = asyncio.Event()
    events = Events(stop)
    events.stop_when(lambda c: c[WorkerEvent.DEAD] >= 1)
    await Worker(queue, {TRANSFER_COMPLETED: TransferNotifier()}, listener=events).run(stop)
    dead = await _job(sessions, job.id)
    assert dead.status == "dead"
    assert dead.last_error == (
        "no handler for job kind 'report.generate' (this worker knows: transfer.completed)"
    )


async def test_a_job_past_its_timeout_is_cancelled_and_failed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    queue = JobQueue(sessions)
    job = await queue.enqueue("slow", {}, max_attempts=1)

    async def hangs(job: ClaimedJob, session: AsyncSession) -> None:
        await asyncio.Event().wait()

    stop = asyncio.Event()
    events = Events(stop)
    events.stop_when(lambda c: c[WorkerEvent.DEAD] >= 1)
    await Worker(queue, {"slow": hangs}, job_timeout=0.05, listener=events).run(stop)
    dead = await _job(sessions, job.id)
    assert dead.last_error is not None
    assert dead.last_error.startswith("OperationTimeout: ")


async def test_a_job_timeout_longer_than_a_day_lets_the_job_run(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # The worker accepts any job_timeout below MAX_SECONDS; the handler's deadline must
    # accept the same (it refused more than a day, failing every run of every job).
    queue = JobQueue(sessions)
    job = await queue.enqueue("quick", {}, max_attempts=1)

    async def quick(job: ClaimedJob, session: AsyncSession) -> None:
        return None

    stop = asyncio.Event()
    events = Events(stop)
    events.stop_when(lambda c: c[WorkerEvent.DONE] + c[WorkerEvent.DEAD] >= 1)
    await Worker(queue, {"quick": quick}, job_timeout=100_000, listener=events).run(stop)
    assert (events.counts[WorkerEvent.DONE], events.counts[WorkerEvent.DEAD]) == (1, 0)
    assert (await _job(sessions, job.id)).status == "done"


async def test_shutdown_lets_in_flight_jobs_finish_within_the_deadline(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    job_id = await _one_deposit_job(sessions)
    started, proceed, handler = _gate()
    stop = asyncio.Event()
    worker = Worker(JobQueue(sessions), {TRANSFER_COMPLETED: handler}, shutdown_timeout=30)
    with _no_task_left_behind():
        async with running_worker(worker, stop) as run:
            await started.wait()
            stop.set()
            proceed.set()
            stats = await run
    assert (stats.done, stats.released) == (1, 0)
    assert (await _job(sessions, job_id)).status == "done"
    assert pool_status(engine).checked_out == 0


async def test_shutdown_past_the_deadline_hands_unfinished_jobs_back(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    job_id = await _one_deposit_job(sessions)
    started, _, handler = _gate(write_first=True)  # never finishes, holding a transaction
    stop = asyncio.Event()
    # One slot: on SQLite the open transaction holds the write lock, so with a free slot
    # the worker's next claim would wait for it (see the test after this one).
    worker = Worker(
        JobQueue(sessions), {TRANSFER_COMPLETED: handler}, concurrency=1, shutdown_timeout=0.1
    )
    with _no_task_left_behind():
        async with running_worker(worker, stop) as run:
            await started.wait()
            stop.set()
            began = time.perf_counter()
            stats = await run
    assert time.perf_counter() - began < 5
    assert (stats.done, stats.released) == (0, 1)
    job = await _job(sessions, job_id)
    assert (job.status, job.attempts, job.lease_owner) == ("queued", 0, None)
    assert await _notification_count(sessions) == 0  # the cancelled handler rolled back
    assert pool_status(engine).checked_out == 0


async def test_a_stop_does_not_wait_for_a_claim_stuck_behind_a_lock(
    settings: DatabaseSettings, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _one_deposit_job(sessions)
    claiming = asyncio.Event()

    class Watched(JobQueue):
        async def claim(self, worker_id: str, *, limit: int, lease_seconds: float) -> list[Any]:
            claiming.set()
            return await super().claim(worker_id, limit=limit, lease_seconds=lease_seconds)

    # SQLite cannot interrupt a wait in its busy handler: a cancelled claim returns when
    # the wait ends, so the bound on a stop includes DB_BUSY_TIMEOUT_MS.
    worker_engine = create_engine(settings.replace(busy_timeout_ms=200))
    stop = asyncio.Event()
    worker = Worker(Watched(create_session_factory(worker_engine)), {}, shutdown_timeout=0.1)
    try:
        async with engine.connect() as blocker:
            # Another transaction locks the jobs table (on SQLite, any write does).
            if engine.dialect.name == "postgresql":
                await blocker.execute(text("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE"))
            else:
                await blocker.execute(text("UPDATE jobs SET attempts = attempts"))
            async with running_worker(worker, stop) as run:
                await claiming.wait()
                stop.set()
                began = time.perf_counter()
                stats = await run
            assert time.perf_counter() - began < 5
            await blocker.rollback()
        assert stats.claimed == 0
        assert pool_status(worker_engine).checked_out == 0
    finally:
        await worker_engine.dispose()


async def test_cancelling_the_worker_itself_leaves_no_job_task_or_connection(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _one_deposit_job(sessions)
    started, _, handler = _gate()
    worker = Worker(JobQueue(sessions), {TRANSFER_COMPLETED: handler})
    with _no_task_left_behind():
        run = asyncio.create_task(worker.run(asyncio.Event()))
        await started.wait()
        run.cancel()
        (result,) = await asyncio.gather(run, return_exceptions=True)
    assert isinstance(result, asyncio.CancelledError)
    assert worker.stats.released == 1
    assert pool_status(engine).checked_out == 0


class _CancelsItsWorker(JobQueue):
    """A queue whose claim cancels the worker that runs it: as the claim starts, or once it
    has committed. The cancellation lands at a known point, not wherever the scheduler
    happens to be (a cancel that meets the COMMIT on its way leaves the jobs leased until
    the lease expires, as services.worker.shutdown.abandon says)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, after_commit: bool) -> None:
        super().__init__(sessions)
        self.after_commit = after_commit
        self.run: asyncio.Task[Any] | None = None

    async def claim(self, worker_id: str, *, limit: int, lease_seconds: float) -> list[Any]:
        assert self.run is not None
        if not self.after_commit:
            self.run.cancel()  # reaches the claim at its first statement
        claimed = await super().claim(worker_id, limit=limit, lease_seconds=lease_seconds)
        self.run.cancel()  # the claim returns its jobs before the worker sees the cancel
        return claimed


async def _cancel_mid_claim(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], *, after_commit: bool
) -> Worker:
    await _one_deposit_job(sessions)
    queue = _CancelsItsWorker(sessions, after_commit=after_commit)
    worker = Worker(queue, {TRANSFER_COMPLETED: TransferNotifier()})
    with _no_task_left_behind():
        run: asyncio.Task[WorkerStats] = asyncio.create_task(worker.run(asyncio.Event()))
        queue.run = run
        (result,) = await asyncio.gather(run, return_exceptions=True)
    assert isinstance(result, asyncio.CancelledError)
    assert pool_status(engine).checked_out == 0
    job = await _job(sessions, (await _job_ids(sessions))[0])
    assert (job.status, job.attempts, job.lease_owner) == ("queued", 0, None)
    return worker


async def test_cancelling_the_worker_as_it_claims_rolls_the_claim_back(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    worker = await _cancel_mid_claim(engine, sessions, after_commit=False)
    assert (worker.stats.claimed, worker.stats.released) == (0, 0)


async def test_cancelling_the_worker_after_its_claim_committed_hands_the_jobs_back(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    worker = await _cancel_mid_claim(engine, sessions, after_commit=True)
    assert (worker.stats.claimed, worker.stats.released) == (1, 1)


def test_an_idle_worker_polls_less_and_less_often_up_to_a_ceiling() -> None:
    worker = Worker(JobQueue(async_sessionmaker()), {}, poll_interval=0.5, max_poll_interval=3.0)
    for idle_claims, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (10, 3.0)]:
        delays = [worker.idle_delay(idle_claims) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 10  # jittered, not in lockstep


async def _deposit_jobs(sessions: async_sessionmaker[AsyncSession], count: int) -> list[int]:
    account = await open_account(sessions)
    await TransferService(sessions).transfer_many(
        [TransferRequest.of(None, account.id, 1) for _ in range(count)]
    )
    return await _job_ids(sessions)


async def test_a_batch_settles_its_effects_and_completions_in_one_transaction(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    total = 20
    job_ids = await _deposit_jobs(sessions, total)
    commits: list[int] = []
    stop = asyncio.Event()
    events = Events(stop)
    events.stop_when(lambda c: c[WorkerEvent.DONE] >= total)
    worker = Worker(
        JobQueue(sessions),
        {TRANSFER_COMPLETED: TransferNotifier()},
        batch_size=total,
        batch_seconds=60,
        listener=events,
    )

    def counted(_connection: Any) -> None:
        commits.append(1)

    event.listen(engine.sync_engine, "commit", counted)
    try:
        with StatementLog(engine) as log:
            stats = await worker.run(stop)
    finally:
        event.remove(engine.sync_engine, "commit", counted)
    updates = [s for s in log.touching("jobs") if s.upper().startswith("UPDATE")]
    claims = [s for s in updates if "attempts + " in s]
    settlements = [s for s in updates if "finished_at" in s]
    assert stats.done == total
    assert await _notification_count(sessions) == total
    # The second batch slot may claim (nothing) again before the stop: each claim is
    # one commit, and one more settles all twenty jobs.
    assert len(settlements) == 1
    assert len(commits) == len(claims) + 1
    async with sessions() as session:
        statuses = (await session.scalars(select(Job.status).where(Job.id.in_(job_ids)))).all()
    assert set(statuses) == {"done"}


async def test_a_failing_job_rolls_back_alone_and_is_recorded_with_the_rest(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    queue = JobQueue(sessions)
    await _deposit_jobs(sessions, 2)
    bad = await queue.enqueue("bad", {}, max_attempts=1)
    account = await open_account(sessions)  # its deposit: a third notification job
    await TransferService(sessions).transfer_many([TransferRequest.of(None, account.id, 1)])
    runs: Counter[int] = Counter()
    notifier = TransferNotifier()

    async def counting(job: ClaimedJob, session: AsyncSession) -> None:
        runs[job.id] += 1
        await notifier(job, session)

    async def failing(job: ClaimedJob, session: AsyncSession) -> None:
        await session.execute(text("UPDATE jobs SET attempts = attempts WHERE id = 0"))
        raise RuntimeError("boom")

    stop = asyncio.Event()
    events = Events(stop)
    events.stop_when(lambda c: c[WorkerEvent.DONE] >= 3 and c[WorkerEvent.DEAD] >= 1)
    worker = Worker(
        queue,
        {TRANSFER_COMPLETED: counting, "bad": failing},
        batch_size=10,
        batch_seconds=60,
        listener=events,
    )
    stats = await worker.run(stop)
    assert (stats.done, stats.dead, stats.lost) == (3, 1, 0)
    assert await _notification_count(sessions) == 3  # each effect committed exactly once
    assert set(runs.values()) == {1, 2}  # those before the failure ran again, once
    dead = await _job(sessions, bad.id)
    assert (dead.status, dead.last_error) == ("dead", "RuntimeError: boom")


async def test_a_stale_lease_in_a_batch_is_refused_alone_and_the_rest_commits(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first, *others = await _deposit_jobs(sessions, 3)
    clock = FakeClock()
    queue = JobQueue(sessions, clock=clock)
    started, proceed = asyncio.Event(), asyncio.Event()
    notifier = TransferNotifier()

    async def handler(job: ClaimedJob, session: AsyncSession) -> None:
        if job.id == first:
            started.set()
            await proceed.wait()  # before any statement: no lock held yet
        await notifier(job, session)

    stop, events = asyncio.Event(), Events()
    worker = Worker(
        queue,
        {TRANSFER_COMPLETED: handler},
        concurrency=1,
        batch_size=10,
        batch_seconds=60,
        lease_seconds=60,
        heartbeat_interval=59,  # slower than the test: the completion finds the loss
        listener=events,
    )
    async with running_worker(worker, stop) as run:
        await started.wait()
        clock.advance(61)
        (taken,) = await queue.claim("other", limit=1, lease_seconds=60)
        proceed.set()
        await events.wait_for(WorkerEvent.DONE, 2)
        stop.set()
        stats = await run
    assert taken.id == first
    assert (stats.done, stats.lost) == (2, 1)
    async with sessions() as session:
        notified = set((await session.scalars(select(Notification.transfer_id))).all())
        payloads = {
            job_id: (await session.get(Job, job_id)).payload["transfer_id"]  # type: ignore[union-attr]
            for job_id in (first, *others)
        }
    assert notified == {payloads[j] for j in others}  # the stale job's effect rolled back
    assert (await _job(sessions, first)).lease_owner == "other"
