"""Crash safety: a process running transfers is killed with SIGKILL, several times.

After each kill the database opens at the current revision (SQLite: its integrity check
passes), the audit is clean, no money appeared or vanished, every acknowledged transfer is
there exactly once, and retrying each request that was in flight, with its idempotency key,
leaves exactly one transfer for it: the original if it had committed, else a new one.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import DatabaseSettings, create_engine, create_session_factory, migrations
from models import Account, Transfer
from services import AccountService, LedgerAuditor, TransferService, UserService
from tests.conftest import NewDatabase
from tests.crash_harness import ChildLog, after_acknowledged, run_until_killed, when_paused
from tests.ledger import snapshot

ACCOUNTS = 4
OPENING = 1_000_000  # far above what a run can move (amounts are 1..100)


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
