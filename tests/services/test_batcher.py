"""TransferBatcher: group commit with the semantics of one-at-a-time transfers."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import DatabaseSettings, create_engine, create_session_factory
from models import Account
from services import (
    AccountService,
    BatcherClosed,
    LedgerAuditor,
    TransferBatcher,
    TransferRecord,
    TransferService,
)
from services.batcher import split_budget
from services.errors import (
    AccountNotFound,
    DatabaseBusy,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    InvalidInput,
    OperationTimeout,
    SameAccount,
)
from services.transactions import DEFAULT_ATTEMPTS
from tests.support.ledger import open_account, snapshot
from tests.support.pgbouncer import through_pgbouncer

pytestmark = through_pgbouncer


async def _yield_until(condition: Any, limit: int = 10_000) -> None:
    """Let other tasks run until `condition()` holds (bounded by a count, not by time)."""
    for _ in range(limit):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


@asynccontextmanager
async def _write_lock_held(engine: AsyncEngine, account_id: int) -> AsyncIterator[None]:
    """Hold what a transfer of `account_id` must wait for: the SQLite write lock (BEGIN
    IMMEDIATE) or the account's row lock on PostgreSQL."""
    async with engine.connect() as connection, connection.begin():
        await connection.execute(
            select(Account.id).where(Account.id == account_id).with_for_update()
        )
        yield


async def test_concurrent_calls_form_one_batch_with_sequential_outcomes(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=100)
    b = await open_account(sessions)
    c = await open_account(sessions, currency="USD")
    async with TransferBatcher(sessions) as batcher:
        results = await asyncio.gather(
            batcher.transfer(a.id, b.id, 60, idempotency_key="k1"),
            batcher.transfer(a.id, b.id, 60),  # insufficient after the first
            batcher.transfer(a.id, b.id, 60, idempotency_key="k1"),  # repeat inside the batch
            batcher.transfer(a.id, b.id, 61, idempotency_key="k1"),  # conflict inside the batch
            batcher.transfer(a.id, 424_242, 1),
            batcher.transfer(b.id, a.id, 10),
            return_exceptions=True,
        )
    assert batcher.largest_batch == 6
    first, insufficient, repeat, conflict, unknown, back = results
    assert isinstance(first, TransferRecord)
    assert repeat == replace(first, replayed=True)
    assert isinstance(insufficient, InsufficientFunds)
    assert isinstance(conflict, IdempotencyConflict)
    assert isinstance(unknown, AccountNotFound)
    assert not isinstance(back, BaseException)
    accounts = AccountService(sessions)
    assert [await accounts.balance(x.id) for x in (a, b, c)] == [50, 50, 0]
    assert (await LedgerAuditor(sessions).verify()).ok


async def test_bad_input_is_refused_before_queueing_like_transfer_service(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=100)
    async with TransferBatcher(sessions) as batcher:
        with pytest.raises(SameAccount):
            await batcher.transfer(a.id, a.id, 1)
        with pytest.raises(InvalidAmount):
            await batcher.transfer(a.id, a.id + 1, 0)
    assert batcher.batches == 0


async def test_a_thousand_transfers_from_64_clients_conserve_money(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    accounts = [await open_account(sessions, balance=10_000) for _ in range(8)]
    ids = [x.id for x in accounts]
    rng = random.Random(5)
    plan: list[tuple[int, int, int]] = []
    for _ in range(1_024):
        source, destination = rng.sample(ids, 2)
        plan.append((source, destination, rng.randint(1, 4_000)))

    moved: list[tuple[int, int, int]] = []
    async with TransferBatcher(sessions) as batcher:

        async def client(work: list[tuple[int, int, int]]) -> None:
            for source, destination, amount in work:
                with suppress(InsufficientFunds):
                    await batcher.transfer(source, destination, amount)
                    moved.append((source, destination, amount))

        await asyncio.gather(*(client(plan[i::64]) for i in range(64)))

    assert batcher.batches < len(plan)  # requests really were coalesced
    balances = {i: await AccountService(sessions).balance(i) for i in ids}
    assert sum(balances.values()) == 80_000
    # Each acknowledged transfer moved its money once, and no refused one did.
    expected = dict.fromkeys(ids, 10_000)
    for source, destination, amount in moved:
        expected[source] -= amount
        expected[destination] += amount
    assert balances == expected
    report = await LedgerAuditor(sessions).verify()
    assert report.ok, report.problems


async def test_a_poisoned_request_fails_alone_and_leaves_nothing_half_applied(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    a = await open_account(sessions, balance=1_000)
    b = await open_account(sessions)

    def poison(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "INSERT INTO transfers" in statement and "POISON" in repr(parameters):
            raise RuntimeError("injected failure")

    event.listen(engine.sync_engine, "before_cursor_execute", poison)
    try:
        async with TransferBatcher(sessions) as batcher:
            results = await asyncio.gather(
                *(batcher.transfer(a.id, b.id, 10, description=f"ok {i}") for i in range(5)),
                batcher.transfer(a.id, b.id, 10, description="POISON"),
                return_exceptions=True,
            )
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", poison)

    assert [type(r).__name__ for r in results] == ["TransferRecord"] * 5 + ["RuntimeError"]
    assert await AccountService(sessions).balance(b.id) == 50
    assert (await snapshot(sessions)).transfers == 1 + 5
    assert (await LedgerAuditor(sessions).verify()).ok


REQUESTS = 64


class Begins:
    """Counts the transactions an engine begins."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        self._engine = engine.sync_engine

    def _begun(self, *_: Any) -> None:
        self.count += 1

    def __enter__(self) -> Begins:
        event.listen(self._engine, "begin", self._begun)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self._engine, "begin", self._begun)


async def test_a_batch_against_a_database_that_stays_busy_fails_whole_without_splitting(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine, settings: DatabaseSettings
) -> None:
    a = await open_account(sessions, balance=1_000)
    b = await open_account(sessions)
    impatient = create_engine(settings.replace(busy_timeout_ms=20, lock_timeout_ms=20))
    try:
        async with (
            TransferBatcher(create_session_factory(impatient)) as batcher,
            _write_lock_held(engine, a.id),
        ):
            with Begins(impatient) as begins:
                results = await asyncio.gather(
                    *(batcher.transfer(a.id, b.id, 1) for _ in range(REQUESTS)),
                    return_exceptions=True,
                )
    finally:
        await impatient.dispose()
    assert {type(r) for r in results} == {DatabaseBusy}
    # One batch, retried as any transaction is; not 127 halves retried 5 times each.
    assert batcher.batches == 1
    assert begins.count <= DEFAULT_ATTEMPTS
    assert (await snapshot(sessions)).transfers == 1


async def test_a_batch_that_fails_throughout_is_split_within_its_budget(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    a = await open_account(sessions, balance=1_000)
    b = await open_account(sessions)

    def poison(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "INSERT INTO transfers" in statement and "POISON" in repr(parameters):
            raise RuntimeError("injected failure")

    event.listen(engine.sync_engine, "before_cursor_execute", poison)
    try:
        async with TransferBatcher(sessions) as batcher:
            results = await asyncio.gather(
                *(batcher.transfer(a.id, b.id, 1, description="POISON") for _ in range(REQUESTS)),
                return_exceptions=True,
            )
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", poison)
    assert {type(r) for r in results} == {RuntimeError}
    assert batcher.batches <= 1 + split_budget(REQUESTS) < 2 * REQUESTS - 1
    assert (await snapshot(sessions)).transfers == 1


async def test_a_request_cancelled_before_its_batch_starts_is_dropped(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    a = await open_account(sessions, balance=1_000)
    b = await open_account(sessions)
    async with TransferBatcher(sessions) as batcher:
        async with _write_lock_held(engine, a.id):
            first = asyncio.create_task(batcher.transfer(a.id, b.id, 1, idempotency_key="first"))
            await _yield_until(lambda: batcher.batches == 1)  # batch 1 waits for the lock
            second = asyncio.create_task(batcher.transfer(a.id, b.id, 2, idempotency_key="second"))
            await _yield_until(lambda: batcher.waiting == 1)
            second.cancel()
        await first
    with pytest.raises(asyncio.CancelledError):
        await second
    assert batcher.batches == 1
    assert await AccountService(sessions).balance(b.id) == 1


async def test_a_request_cancelled_after_its_batch_started_still_takes_effect(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    a = await open_account(sessions, balance=1_000)
    b = await open_account(sessions)
    async with TransferBatcher(sessions) as batcher, _write_lock_held(engine, a.id):
        caller = asyncio.create_task(batcher.transfer(a.id, b.id, 7, idempotency_key="late"))
        await _yield_until(lambda: batcher.batches == 1)
        caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    # The outcome stood; a retry with the same key learns it and moves nothing more.
    retry = await TransferService(sessions).transfer(a.id, b.id, 7, idempotency_key="late")
    assert retry.amount == 7
    assert await AccountService(sessions).balance(b.id) == 7


async def test_closing_drains_every_accepted_request_then_refuses_new_ones(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=1_000)
    b = await open_account(sessions)
    batcher = TransferBatcher(sessions)
    batcher.start()
    calls = [asyncio.create_task(batcher.transfer(a.id, b.id, 1)) for _ in range(20)]
    await _yield_until(lambda: batcher.waiting + batcher.batches > 0)
    await batcher.close()
    assert all(c.done() and not c.cancelled() and c.exception() is None for c in calls)
    assert await AccountService(sessions).balance(b.id) == 20
    with pytest.raises(BatcherClosed):
        await batcher.transfer(a.id, b.id, 1)


async def test_a_timeout_before_the_batch_starts_drops_the_request(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    a = await open_account(sessions, balance=1_000)
    b = await open_account(sessions)
    async with TransferBatcher(sessions) as batcher:
        async with _write_lock_held(engine, a.id):
            first = asyncio.create_task(batcher.transfer(a.id, b.id, 1, idempotency_key="one"))
            await _yield_until(lambda: batcher.batches == 1)  # batch 1 waits for the lock
            with pytest.raises(OperationTimeout):
                await batcher.transfer(a.id, b.id, 2, idempotency_key="two", timeout=0.01)
        await first
    assert batcher.batches == 1
    assert await AccountService(sessions).balance(b.id) == 1


@pytest.mark.parametrize("max_batch", [0, -1])
async def test_a_batch_size_below_one_is_invalid_input(
    sessions: async_sessionmaker[AsyncSession], max_batch: int
) -> None:
    with pytest.raises(InvalidInput, match="max_batch"):
        TransferBatcher(sessions, max_batch=max_batch)
