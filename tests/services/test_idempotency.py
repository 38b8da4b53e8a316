"""Idempotency keys: a retried request moves money once."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import (
    AccountService,
    LedgerAuditor,
    TransferBatcher,
    TransferRequest,
    TransferService,
)
from services.errors import IdempotencyConflict
from tests.support.ledger import open_account, snapshot


async def test_repeating_a_request_with_its_key_returns_the_original_and_moves_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=1_000)
    b = await open_account(sessions)
    transfers = TransferService(sessions)
    first = await transfers.transfer(a.id, b.id, 300, idempotency_key="k-1")
    after_first = await snapshot(sessions)
    again = await transfers.transfer(a.id, b.id, 300, idempotency_key="k-1")
    assert not first.replayed
    assert again == replace(first, replayed=True)
    assert await snapshot(sessions) == after_first


async def test_a_retry_returns_the_original_even_when_it_could_no_longer_succeed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=300)
    b = await open_account(sessions)
    transfers = TransferService(sessions)
    first = await transfers.transfer(a.id, b.id, 300, idempotency_key="all-of-it")
    # The source is empty now; a fresh request would be InsufficientFunds, a retry is not.
    retry = await transfers.transfer(a.id, b.id, 300, idempotency_key="all-of-it")
    assert retry == replace(first, replayed=True)


@pytest.mark.parametrize("change", ["amount", "destination", "direction"])
async def test_reusing_a_key_for_another_request_is_a_conflict(
    sessions: async_sessionmaker[AsyncSession], change: str
) -> None:
    a = await open_account(sessions, balance=1_000)
    b = await open_account(sessions, balance=1_000)
    c = await open_account(sessions)
    transfers = TransferService(sessions)
    await transfers.transfer(a.id, b.id, 300, idempotency_key="k-1")
    before = await snapshot(sessions)
    other = {
        "amount": (a.id, b.id, 301),
        "destination": (a.id, c.id, 300),
        "direction": (b.id, a.id, 300),
    }[change]
    with pytest.raises(IdempotencyConflict):
        await transfers.transfer(*other, idempotency_key="k-1")
    assert await snapshot(sessions) == before


@pytest.mark.parametrize(
    ("first", "again"), [("rent", "rent, december"), ("rent", None), (None, "rent")]
)
async def test_a_replay_whose_description_differs_is_a_conflict_on_every_write_path(
    sessions: async_sessionmaker[AsyncSession], first: str | None, again: str | None
) -> None:
    # The same rule the HTTP API applies ("same body"), for every interface: the service.
    a = await open_account(sessions, balance=1_000)
    b = await open_account(sessions)
    transfers, accounts = TransferService(sessions), AccountService(sessions)
    await transfers.transfer(a.id, b.id, 5, idempotency_key="t", description=first)
    await accounts.deposit(a.id, 5, idempotency_key="d", description=first)
    before = await snapshot(sessions)
    with pytest.raises(IdempotencyConflict):
        await transfers.transfer(a.id, b.id, 5, idempotency_key="t", description=again)
    with pytest.raises(IdempotencyConflict):
        await accounts.deposit(a.id, 5, idempotency_key="d", description=again)
    async with TransferBatcher(sessions) as batcher:
        with pytest.raises(IdempotencyConflict):
            await batcher.transfer(a.id, b.id, 5, idempotency_key="t", description=again)
    (outcome,) = await transfers.transfer_many(
        [TransferRequest.of(a.id, b.id, 5, idempotency_key="t", description=again)]
    )
    assert isinstance(outcome, IdempotencyConflict)
    assert await snapshot(sessions) == before


async def test_a_replay_with_the_same_description_is_the_original(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=1_000)
    b = await open_account(sessions)
    transfers = TransferService(sessions)
    first = await transfers.transfer(a.id, b.id, 5, idempotency_key="t", description=" rent ")
    again = await transfers.transfer(a.id, b.id, 5, idempotency_key="t", description="rent")
    assert again == replace(first, replayed=True)


async def test_keys_are_shared_by_deposits_withdrawals_and_transfers(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=1_000)
    b = await open_account(sessions)
    await AccountService(sessions).deposit(a.id, 5, idempotency_key="shared")
    with pytest.raises(IdempotencyConflict):
        await TransferService(sessions).transfer(a.id, b.id, 5, idempotency_key="shared")


async def test_a_failed_request_does_not_consume_its_key(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=100)
    b = await open_account(sessions)
    accounts, transfers = AccountService(sessions), TransferService(sessions)
    with pytest.raises(Exception, match="less than"):
        await transfers.transfer(a.id, b.id, 150, idempotency_key="retry-me")
    await accounts.deposit(a.id, 100)
    record = await transfers.transfer(a.id, b.id, 150, idempotency_key="retry-me")
    assert record.amount == 150


async def test_many_concurrent_requests_with_one_key_make_exactly_one_transfer(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=10_000)
    b = await open_account(sessions)
    transfers = TransferService(sessions)
    results = await asyncio.gather(
        *(transfers.transfer(a.id, b.id, 700, idempotency_key="once") for _ in range(40))
    )
    assert len({r.id for r in results}) == 1
    accounts = AccountService(sessions)
    assert (await accounts.balance(a.id), await accounts.balance(b.id)) == (9_300, 700)
    assert (await LedgerAuditor(sessions).verify()).ok


async def test_concurrent_conflicting_uses_of_one_key_let_exactly_one_win(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # Different accounts, so on PostgreSQL no row lock serialises them: the unique index
    # decides, and the loser's rerun finds the winner's key.
    pairs = [
        (await open_account(sessions, balance=1_000), await open_account(sessions))
        for _ in range(6)
    ]
    transfers = TransferService(sessions)
    results = await asyncio.gather(
        *(transfers.transfer(s.id, d.id, 10, idempotency_key="contested") for s, d in pairs),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, IdempotencyConflict) for r in results if isinstance(r, BaseException))
    assert (await snapshot(sessions)).transfers == 6 + 1  # six opening deposits + the winner
