"""Gaps that mutation testing of the transfer core found: behaviour no test pinned down."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from models import Job
from services import AccountService, LedgerAuditor, TransferRecord, TransferRequest, TransferService
from services.errors import IdempotencyConflict, InvalidAmount
from services.outbox import TRANSFER_COMPLETED
from services.validation import MAX_AMOUNT
from tests.support.jobs import StatementLog
from tests.support.ledger import open_account, snapshot


async def test_a_deposit_may_land_exactly_on_the_largest_balance(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    account = await open_account(sessions, balance=MAX_AMOUNT - 10)
    accounts = AccountService(sessions)
    await accounts.deposit(account.id, 10)
    assert await accounts.balance(account.id) == MAX_AMOUNT


async def test_a_deposit_past_the_largest_balance_is_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    account = await open_account(sessions, balance=MAX_AMOUNT - 10)
    before = await snapshot(sessions)
    with pytest.raises(InvalidAmount, match="cannot hold more than"):
        await AccountService(sessions).deposit(account.id, 11)
    assert await snapshot(sessions) == before


async def test_a_batch_whose_transfers_net_to_zero_commits_them_all(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=100)
    b = await open_account(sessions, balance=100)
    before = await snapshot(sessions)

    outcomes = await TransferService(sessions).transfer_many(
        [TransferRequest.of(a.id, b.id, 40), TransferRequest.of(b.id, a.id, 40)]
    )

    assert all(isinstance(o, TransferRecord) for o in outcomes), outcomes
    after = await snapshot(sessions)
    assert after.balances == before.balances
    assert after.transfers == before.transfers + 2
    assert (await LedgerAuditor(sessions).verify()).ok


async def test_the_core_writes_one_outbox_job_per_new_transfer(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions)
    b = await open_account(sessions)
    async with sessions() as session:
        jobs_before = len((await session.scalars(select(Job))).all())

    deposit = await AccountService(sessions).deposit(a.id, 50)
    transfer = await TransferService(sessions).transfer(a.id, b.id, 20)

    async with sessions() as session:
        jobs = (await session.scalars(select(Job).order_by(Job.id))).all()[jobs_before:]
    assert [(j.kind, j.payload) for j in jobs] == [
        (TRANSFER_COMPLETED, {"transfer_id": deposit.id}),
        (TRANSFER_COMPLETED, {"transfer_id": transfer.id}),
    ]


async def test_a_refused_or_replayed_request_writes_no_outbox_job(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=10)
    b = await open_account(sessions)
    service = TransferService(sessions)
    await service.transfer(a.id, b.id, 5, idempotency_key="once")
    async with sessions() as session:
        jobs_before = len((await session.scalars(select(Job))).all())

    await service.transfer(a.id, b.id, 5, idempotency_key="once")
    outcomes = await service.transfer_many([TransferRequest.of(a.id, b.id, 1_000)])

    assert not isinstance(outcomes[0], TransferRecord)
    async with sessions() as session:
        assert len((await session.scalars(select(Job))).all()) == jobs_before


def _key_lookups(log: StatementLog) -> int:
    return sum(
        1 for s in log.touching("transfers") if s.startswith("SELECT") and "idempotency_key" in s
    )


async def test_a_keyed_transfer_that_succeeds_reads_no_keys(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    # The insert's ON CONFLICT finds a taken key; reading keys first would be a round trip
    # on every keyed request.
    a = await open_account(sessions, balance=10)
    b = await open_account(sessions)
    with StatementLog(engine) as log:
        await TransferService(sessions).transfer(a.id, b.id, 5, idempotency_key="fresh")
    assert _key_lookups(log) == 0


async def test_a_key_reused_for_another_transfer_is_read_once(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    a = await open_account(sessions, balance=10)
    b = await open_account(sessions)
    service = TransferService(sessions)
    await service.transfer(a.id, b.id, 5, idempotency_key="used")
    with StatementLog(engine) as log:
        outcomes = await service.transfer_many(
            [TransferRequest.of(a.id, b.id, 1, idempotency_key="used")]
        )
    assert isinstance(outcomes[0], IdempotencyConflict)
    assert _key_lookups(log) == 1
