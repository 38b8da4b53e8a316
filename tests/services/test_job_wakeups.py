"""Wake-ups: an idle worker claims when a job commits, not when its poll comes round."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.wakeups import JOBS_CHANNEL
from models import utcnow
from services import TRANSFER_COMPLETED, ClaimedJob, JobQueue, TransferService, Worker, WorkerEvent
from tests.support.backends import postgres_direct_only, postgres_only, sqlite_only
from tests.support.jobs import StatementLog
from tests.support.ledger import open_account
from tests.support.pgbouncer import through_pgbouncer
from tests.support.workers import Events, running_worker

# Through PgBouncer the listener must still reach the server directly (DB_LISTEN_URL).
pytestmark = through_pgbouncer

NEVER: float = 600.0  # a poll interval no test lives to see


class Watched(JobQueue):
    """A queue that signals each claim it has answered."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(sessions)
        self.claims = 0
        self.answered = asyncio.Event()

    async def claim(self, worker_id: str, *, limit: int, lease_seconds: float) -> list[Any]:
        claimed = await super().claim(worker_id, limit=limit, lease_seconds=lease_seconds)
        self.claims += 1
        self.answered.set()
        return claimed


async def _noop(job: ClaimedJob, session: AsyncSession) -> None:
    return None


async def _idle(worker: Worker, queue: Watched) -> None:
    """Until the worker's wake-ups are live and its first claim (of nothing) is answered."""
    async with asyncio.timeout(60):
        await queue.answered.wait()
        assert worker.wakeups is not None
        if worker.wakeups.listener is not None:
            await worker.wakeups.listener.connected.wait()
        if worker.wakeups.watcher is not None:
            await worker.wakeups.watcher.watching.wait()


async def test_an_idle_worker_claims_as_soon_as_a_job_commits(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    queue = Watched(sessions)
    stop, events = asyncio.Event(), Events()
    # Polls that never come round: only the wake-up can bring the job.
    worker = Worker(
        queue, {"k": _noop}, poll_interval=NEVER, max_poll_interval=NEVER, listener=events
    )
    async with running_worker(worker, stop) as run:
        await _idle(worker, queue)
        async with sessions() as session, session.begin():
            await JobQueue(sessions).enqueue("k", {}, session=session)
        await events.wait_for(WorkerEvent.DONE)
        stop.set()
        stats = await run
    assert stats.done == 1


@sqlite_only
async def test_a_commit_from_another_process_is_noticed_by_data_version(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    queue = Watched(sessions)
    stop, events = asyncio.Event(), Events()
    # The watcher looks every 50 ms; the claim poll never comes round.
    worker = Worker(
        queue, {"k": _noop}, poll_interval=0.05, max_poll_interval=NEVER, listener=events
    )
    async with running_worker(worker, stop) as run:
        await _idle(worker, queue)
        # A plain sqlite3 connection, as another process would write: no in-process signal.
        now = utcnow().strftime("%Y-%m-%d %H:%M:%S.%f")
        other = sqlite3.connect(engine.url.database or "")
        try:
            other.execute(
                "INSERT INTO jobs (kind, payload, status, attempts, max_attempts, run_at,"
                " created_at, updated_at) VALUES ('k', '{}', 'queued', 0, 1, ?, ?, ?)",
                (now, now, now),
            )
            other.commit()
        finally:
            other.close()
        await events.wait_for(WorkerEvent.DONE)
        stop.set()
        await run


@postgres_only
async def test_a_lost_listener_reconnects_and_picks_up_jobs_committed_meanwhile(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    queue = Watched(sessions)
    stop, events = asyncio.Event(), Events()
    worker = Worker(
        queue, {"k": _noop}, poll_interval=NEVER, max_poll_interval=NEVER, listener=events
    )
    async with running_worker(worker, stop) as run:
        await _idle(worker, queue)
        assert worker.wakeups is not None
        assert worker.wakeups.listener is not None
        listener = worker.wakeups.listener
        pid = listener.server_pid
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        # Committed while the listener is down or reconnecting: its NOTIFY reaches no one.
        await JobQueue(sessions).enqueue("k", {})
        async with asyncio.timeout(60):
            await listener.wait_connections(2)
        await events.wait_for(WorkerEvent.DONE)
        stop.set()
        await run
    assert listener.server_pid != pid


async def test_an_idle_worker_sends_at_most_one_query_per_max_poll_interval(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    queue = Watched(sessions)
    stop = asyncio.Event()
    worker = Worker(queue, {"k": _noop}, poll_interval=0.05, max_poll_interval=1.0)
    window = 3.0
    async with running_worker(worker, stop) as run:
        await _idle(worker, queue)
        with StatementLog(engine) as log:
            claims_before = queue.claims
            await asyncio.sleep(window)  # the measured interval, not a synchronisation
        stop.set()
        await run
    # One claim per second at most (plus one begun as the window opened); without
    # wake-ups the poll starts at 50 ms and would send several more.
    assert queue.claims - claims_before <= window / 1.0 + 1
    assert len(log.statements) <= window / 1.0 + 1


async def test_an_idle_worker_claims_as_soon_as_a_transfer_commits(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=100)  # a deposit: one job queued already
    b = await open_account(sessions)
    queue = Watched(sessions)
    stop, events = asyncio.Event(), Events()
    worker = Worker(
        queue,
        {TRANSFER_COMPLETED: _noop},
        poll_interval=NEVER,
        max_poll_interval=NEVER,
        listener=events,
    )
    before = (await queue.stats()).queued
    async with running_worker(worker, stop) as run:
        await _idle(worker, queue)
        await events.wait_for(WorkerEvent.DONE, before)
        # Polls never come round: only the transfer's wake-up can bring its job.
        await TransferService(sessions).transfer(a.id, b.id, 10)
        await events.wait_for(WorkerEvent.DONE, before + 1)
        stop.set()
        stats = await run
    assert stats.done == before + 1


@postgres_direct_only  # LISTEN needs a session of its own, not a pooled one
async def test_a_transfer_notifies_the_jobs_channel_when_it_commits(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    a = await open_account(sessions, balance=100)
    b = await open_account(sessions)
    heard = asyncio.Event()

    def notified(*_: object) -> None:
        heard.set()

    async with engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.add_listener(JOBS_CHANNEL, notified)
        try:
            await TransferService(sessions).transfer(a.id, b.id, 10)
            async with asyncio.timeout(30):
                await heard.wait()
        finally:
            await raw.remove_listener(JOBS_CHANNEL, notified)
