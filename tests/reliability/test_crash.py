"""Crash safety: a process running transfers is killed with SIGKILL, several times.

After each kill the database opens at the current revision (SQLite: its integrity check
passes), the audit is clean, no money appeared or vanished, every acknowledged transfer is
there exactly once, and retrying each request that was in flight, with its idempotency key,
leaves exactly one transfer for it: the original if it had committed, else a new one.

A process running a job worker is killed the same way, mid-job; a new worker reclaims
the interrupted jobs once their leases have expired, and each takes effect exactly once.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import DatabaseSettings, create_engine, create_session_factory, migrations
from models import Account, Job, JobStatus, Transfer, utcnow
from services import (
    AccountService,
    JobQueue,
    LedgerAuditor,
    TransferService,
    UserService,
    Worker,
    WorkerEvent,
    ledger_handlers,
)
from services.outbox_audit import OutboxAuditor
from services.worker import drain
from tests.support.backends import NewDatabase
from tests.support.crash_harness import (
    ChildLog,
    KillRule,
    after_acknowledged,
    after_lines,
    run_until_killed,
    when_paused,
)
from tests.support.ledger import snapshot

ACCOUNTS = 4
OPENING = 1_000_000  # far above what a run can move (amounts are 1..100)
CHILD_LEASE = 1.0  # seconds; the killed worker's leases
WORKER_JOBS = 24  # transfers (so outbox jobs) made before each worker child starts


@dataclass(frozen=True)
class CrashLedger:
    url: str
    accounts: tuple[int, ...]
    total: int


@pytest.fixture(scope="module")
async def crash_ledger(new_database: NewDatabase) -> CrashLedger:
    """One database per engine that every kill in this module works on in turn."""
    url = await new_database()
    engine = create_engine(DatabaseSettings(url=url))
    try:
        await migrations.upgrade(engine)
        sessions = create_session_factory(engine)
        accounts = AccountService(sessions)
        ids = []
        for n in range(ACCOUNTS):
            user = await UserService(sessions).register(f"crash{n}@example.com", f"Crash {n}")
            account = await accounts.open(user.id, "EUR")
            await accounts.deposit(account.id, OPENING)
            ids.append(account.id)
    finally:
        await engine.dispose()
    return CrashLedger(url, tuple(ids), OPENING * ACCOUNTS)


@pytest.fixture
async def reopened(crash_ledger: CrashLedger) -> AsyncIterator[AsyncEngine]:
    """A new engine for after the kill, as a restarted process would have."""
    engine = create_engine(DatabaseSettings(url=crash_ledger.url))
    yield engine
    await engine.dispose()


def child_options(ledger: CrashLedger, run: str, seed: int) -> list[str]:
    accounts = ",".join(map(str, ledger.accounts))
    return ["--accounts", accounts, "--run", run, "--seed", str(seed)]


async def rows_for(sessions: async_sessionmaker[AsyncSession], run: str) -> dict[str, Transfer]:
    """Every transfer whose idempotency key belongs to `run`, by key."""
    async with sessions() as session:
        rows = await session.scalars(
            select(Transfer).where(Transfer.idempotency_key.like(f"{run}-%"))
        )
        return {row.idempotency_key: row for row in rows if row.idempotency_key is not None}


async def assert_consistent(engine: AsyncEngine, ledger: CrashLedger) -> None:
    """The database opens at head, its audit is clean and no money was made or lost."""
    async with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            check = await connection.exec_driver_sql("PRAGMA integrity_check")
            assert check.scalar_one() == "ok"
        else:
            assert (await connection.execute(text("SELECT 1"))).scalar_one() == 1
    assert await migrations.current_revision(engine) == migrations.head_revision()
    sessions = create_session_factory(engine)
    report = await LedgerAuditor(sessions).verify()
    assert report.ok, report.problems
    async with sessions() as session:
        total = await session.scalar(select(func.sum(Account.balance)))
    assert total == ledger.total


async def verify_after_kill(
    engine: AsyncEngine, ledger: CrashLedger, log: ChildLog, run: str
) -> tuple[int, int]:
    """Check the database after a kill, retry what was in flight; return how many in-flight
    requests had committed and how many had not."""
    await assert_consistent(engine, ledger)
    sessions = create_session_factory(engine)
    rows = await rows_for(sessions, run)
    started = {request.key: request for request in log.started.values()}
    assert set(rows) <= set(started), "a transfer exists that was never requested"
    for key, row in rows.items():
        request = started[key]
        assert (row.source_account_id, row.destination_account_id, row.amount) == (
            request.source,
            request.destination,
            request.amount,
        )
    for seq, transfer_id in log.acknowledged.items():
        assert rows[started_key(log, seq)].id == transfer_id

    committed = not_committed = 0
    transfers = TransferService(sessions)
    for request in log.in_flight:
        before = await snapshot(sessions)
        record = await transfers.transfer(
            request.source, request.destination, request.amount, idempotency_key=request.key
        )
        if request.key in rows:
            committed += 1
            assert record.id == rows[request.key].id
            assert await snapshot(sessions) == before
        else:
            not_committed += 1
            after = await snapshot(sessions)
            assert after.transfers == before.transfers + 1
    after_retry = await rows_for(sessions, run)
    assert set(after_retry) == set(rows) | {r.key for r in log.in_flight}
    await assert_consistent(engine, ledger)
    return committed, not_committed


def started_key(log: ChildLog, seq: int) -> str:
    return log.started[seq].key


@pytest.mark.parametrize("phase", ["flushed", "committing", "committed"])
async def test_a_kill_inside_a_transfer_transaction_loses_nothing(
    crash_ledger: CrashLedger, reopened: AsyncEngine, phase: str
) -> None:
    rng = random.Random(f"crash-{phase}")
    run = f"paused-{phase}"
    pause_after = rng.randint(1, 12)
    log = await run_until_killed(
        "transfers",
        crash_ledger.url,
        *child_options(crash_ledger, run, rng.randrange(2**32)),
        "--pause-at",
        phase,
        "--pause-after",
        str(pause_after),
        kill=when_paused,
    )
    assert log.lines[-1] == f"paused {phase}"
    committed, not_committed = await verify_after_kill(reopened, crash_ledger, log, run)
    # The frozen transaction itself: rolled back unless it froze after its COMMIT.
    if phase == "committed":
        assert committed >= 1
    else:
        assert not_committed >= 1


@pytest.mark.parametrize("seed", [1, 2])
async def test_a_kill_at_a_random_moment_of_a_free_run_loses_nothing(
    crash_ledger: CrashLedger, reopened: AsyncEngine, seed: int
) -> None:
    rng = random.Random(seed)
    run = f"free-{seed}"
    rule = after_acknowledged(rng.randint(5, 40), then_lines=rng.randint(0, 5))
    log = await run_until_killed(
        "transfers",
        crash_ledger.url,
        *child_options(crash_ledger, run, rng.randrange(2**32)),
        kill=rule,
    )
    assert log.acknowledged
    await verify_after_kill(reopened, crash_ledger, log, run)


async def running_jobs(sessions: async_sessionmaker[AsyncSession]) -> dict[int, Job]:
    """Jobs still marked running, by id: after a kill, those whose run did not commit."""
    async with sessions() as session:
        jobs = await session.scalars(select(Job).where(Job.status == JobStatus.RUNNING))
        return {job.id: job for job in jobs}


async def done_jobs(sessions: async_sessionmaker[AsyncSession]) -> set[int]:
    async with sessions() as session:
        return set(await session.scalars(select(Job.id).where(Job.status == JobStatus.DONE)))


def ahead_of_now(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=seconds)


@pytest.mark.parametrize("moment", ["handled", "claimed"])
async def test_a_worker_killed_mid_job_has_the_job_reclaimed_and_done_exactly_once(
    crash_ledger: CrashLedger, reopened: AsyncEngine, moment: str
) -> None:
    rng = random.Random(f"worker-{moment}")
    sessions = create_session_factory(reopened)
    transfers = TransferService(sessions)
    for _n in range(WORKER_JOBS):  # each commits a transfer.completed job with it
        source, destination = rng.sample(crash_ledger.accounts, 2)
        await transfers.transfer(source, destination, rng.randint(1, 100))
    nth = rng.randint(1, WORKER_JOBS // 2)
    if moment == "handled":  # frozen with the notification written, its COMMIT not sent
        options = ["--pause-at", "handled", "--pause-after", str(nth)]
        rule: KillRule = when_paused
    else:  # killed right after the nth claim, or a few lines later
        options = []
        rule = after_lines("claimed ", nth, then_lines=rng.randint(0, 2))
    log = await run_until_killed(
        "worker", crash_ledger.url, "--lease", str(CHILD_LEASE), "--tasks", "4", *options, kill=rule
    )
    interrupted = set(log.claimed) - set(log.finished)
    stuck = await running_jobs(sessions)
    # Stuck: claimed by the child (maybe before it could say so), not committed as done.
    assert set(stuck) >= interrupted - await done_jobs(sessions)
    assert all(job.attempts == 1 and job.lease_owner for job in stuck.values())
    if moment == "handled":
        assert stuck, "the frozen job's transaction did not roll back"

    if stuck:
        # Until its lease ends, a dead worker's job is nobody else's to take.
        first_expiry = min(job.lease_expires_at for job in stuck.values() if job.lease_expires_at)
        before = await JobQueue(sessions, clock=lambda: first_expiry).stats()
        assert before.expired_leases == 0
    # Every lease the child took or renewed ends within CHILD_LEASE of the kill: a queue
    # whose clock runs that far ahead sees them all expired, without waiting for it.
    queue = JobQueue(sessions, clock=lambda: ahead_of_now(CHILD_LEASE))
    reran: list[int] = []
    worker = Worker(
        queue,
        ledger_handlers(),
        poll_interval=0.02,
        lease_seconds=30,
        listener=lambda event, job: reran.append(job.id) if event is WorkerEvent.DONE else None,
    )
    async with asyncio.timeout(30):  # a bound for a drain that never ends, not a delay
        stats = await drain(worker)
    assert stats.lost == stats.dead == stats.retrying == 0

    assert set(stuck) <= set(reran), "an interrupted job was not reclaimed"
    for job_id in stuck:
        job = await queue.get(job_id)
        assert job is not None
        assert (job.status, job.attempts) == (JobStatus.DONE, 2)
    for job_id in interrupted - set(stuck):  # committed just before the kill: not rerun
        job = await queue.get(job_id)
        assert job is not None
        assert (job.status, job.attempts) == (JobStatus.DONE, 1)
    left = await queue.stats()
    assert (left.queued, left.running, left.dead) == (0, 0, 0)
    outbox = await OutboxAuditor(sessions).verify()
    assert outbox.ok, outbox.problems
    assert outbox.drained
    assert outbox.jobs == outbox.transfers
    await assert_consistent(reopened, crash_ledger)
