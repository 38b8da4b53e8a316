"""A storm of 1,000 transfers interrupted at random points, on both engines.

Each request is left alone, or given a short deadline (asyncio.timeout), or cancelled
from outside at a random moment (task.cancel()), or cancelled from inside its own COMMIT.
Afterwards no cancellation noise was logged (an unretrieved future, a failed close), no
connection is checked out of the pool, the audit is clean, money is conserved, and every
request either fully happened or not at all: its idempotency key names at most one
transfer, exactly the one acknowledged if it was, and a retry with the key completes it
exactly once.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import DatabaseSettings, create_engine, create_session_factory, pool_status
from models import Transfer
from services import (
    AccountService,
    LedgerAuditor,
    TransferRecord,
    TransferRequest,
    TransferService,
)
from tests.support.backends import sqlite_only
from tests.support.clean_log import captured_log
from tests.support.ledger import open_account, snapshot

REQUESTS = 1_000
ACCOUNTS = 10
OPENING = 100_000  # amounts are at most 100, so no request is refused for funds


@dataclass(frozen=True)
class Planned:
    key: str
    source: int
    destination: int
    amount: int
    interruption: str  # "none", "deadline", "cancel" or "cancel in commit"


@pytest.fixture
async def storm_engine(settings: DatabaseSettings) -> AsyncIterator[AsyncEngine]:
    """An engine of its own, with a pool small enough that requests also queue for it."""
    engine = create_engine(settings.replace(pool_size=5, max_overflow=0))
    yield engine
    await engine.dispose()


def plan(rng: random.Random, accounts: list[int]) -> list[Planned]:
    interruptions = ["none", "deadline", "cancel", "cancel in commit"]
    weights = [25, 35, 25, 15]
    planned = []
    for n in range(REQUESTS):
        source, destination = rng.sample(accounts, 2)
        (interruption,) = rng.choices(interruptions, weights)
        planned.append(
            Planned(f"storm-{n}", source, destination, rng.randint(1, 100), interruption)
        )
    return planned


async def transfers_by_key(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Transfer]:
    async with sessions() as session:
        rows = await session.scalars(select(Transfer).where(Transfer.idempotency_key.is_not(None)))
        return {row.idempotency_key: row for row in rows if row.idempotency_key is not None}


async def test_a_storm_of_cancelled_and_timed_out_transfers_leaves_every_request_whole(
    sessions: async_sessionmaker[AsyncSession], storm_engine: AsyncEngine
) -> None:
    accounts = [(await open_account(sessions, balance=OPENING)).id for _ in range(ACCOUNTS)]
    total_before = sum((await snapshot(sessions)).balances.values())
    rng = random.Random(20240611)
    planned = plan(rng, accounts)
    service = TransferService(create_session_factory(storm_engine))
    cancel_in_commit: set[asyncio.Task[Any]] = set()
    cancelled_in_commit = 0

    def on_commit(_: Connection) -> None:
        # Runs inside the task's own COMMIT: the cancellation lands on the await of it.
        nonlocal cancelled_in_commit
        task = asyncio.current_task()
        if task in cancel_in_commit:
            cancel_in_commit.discard(task)
            cancelled_in_commit += 1
            task.cancel()

    async def send(request: Planned, deadline: float | None) -> TransferRecord:
        async with asyncio.timeout(deadline):
            return await service.transfer(
                request.source, request.destination, request.amount, idempotency_key=request.key
            )

    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[TransferRecord]] = []
    event.listen(storm_engine.sync_engine, "commit", on_commit)
    try:
        async with captured_log() as log:
            for request in planned:
                deadline = rng.uniform(0, 0.02) if request.interruption == "deadline" else None
                task = asyncio.create_task(send(request, deadline))
                if request.interruption == "cancel":
                    loop.call_later(rng.uniform(0, 0.05), task.cancel)
                elif request.interruption == "cancel in commit":
                    cancel_in_commit.add(task)
                tasks.append(task)
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        event.remove(storm_engine.sync_engine, "commit", on_commit)
    # No unretrieved future, no "Exception closing connection" in the log.
    assert log.cancellation_noise() == []

    kinds = Counter(type(outcome).__name__ for outcome in outcomes)
    assert set(kinds) <= {"TransferRecord", "TimeoutError", "CancelledError"}, kinds
    assert kinds["TimeoutError"], kinds
    assert kinds["CancelledError"], kinds
    assert kinds["TransferRecord"], kinds
    assert cancelled_in_commit > 0
    assert pool_status(storm_engine).checked_out == 0

    report = await LedgerAuditor(sessions).verify()
    assert report.ok, report.problems
    assert sum((await snapshot(sessions)).balances.values()) == total_before
    rows = await transfers_by_key(sessions)
    interrupted: list[Planned] = []
    for request, outcome in zip(planned, outcomes, strict=True):
        row = rows.get(request.key)
        if isinstance(outcome, TransferRecord):
            assert row is not None
            assert row.id == outcome.id
        else:
            interrupted.append(request)
        if row is not None:
            assert (row.source_account_id, row.destination_account_id, row.amount) == (
                request.source,
                request.destination,
                request.amount,
            )
    # Some interrupted requests had committed before their client gave up: their retry
    # must return the original and move nothing.
    assert any(request.key in rows for request in interrupted)

    retries = await service.transfer_many(
        [
            TransferRequest.of(r.source, r.destination, r.amount, idempotency_key=r.key)
            for r in interrupted
        ]
    )
    for request, retry in zip(interrupted, retries, strict=True):
        assert isinstance(retry, TransferRecord), retry
        if request.key in rows:
            assert retry.id == rows[request.key].id
    assert set(await transfers_by_key(sessions)) == {request.key for request in planned}
    report = await LedgerAuditor(sessions).verify()
    assert report.ok, report.problems
    assert sum((await snapshot(sessions)).balances.values()) == total_before
    assert pool_status(storm_engine).checked_out == 0


@sqlite_only
async def test_a_connection_closed_in_the_middle_of_a_statement_leaves_no_write_lock(
    sessions: async_sessionmaker[AsyncSession], settings: DatabaseSettings
) -> None:
    # A task is cancelled while its SELECT runs inside a write transaction; the pool then
    # closes that connection while the statement is still open (its cursor kept alive by
    # the cancellation's traceback). No writer may be locked out afterwards.
    account = await open_account(sessions, balance=100)
    engine = create_engine(settings.replace(busy_timeout_ms=200))
    entered, release = threading.Event(), threading.Event()

    def hold(value: int) -> int:
        entered.set()
        release.wait(30)
        return value

    @event.listens_for(engine.sync_engine, "connect")
    def add_hold(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.create_function("hold", 1, hold)

    stuck_sessions = create_session_factory(engine)

    async def stuck() -> None:
        async with stuck_sessions() as session, session.begin():
            await session.execute(text("SELECT hold(id) FROM accounts"))

    try:
        task = asyncio.create_task(stuck())
        await asyncio.to_thread(entered.wait, 30)
        task.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError) as cancelled:
            await task
        assert cancelled.value.__traceback__ is not None  # still holding the cursor
        await AccountService(create_session_factory(engine)).deposit(account.id, 5)
        assert pool_status(engine).checked_out == 0
    finally:
        release.set()
        await engine.dispose()
