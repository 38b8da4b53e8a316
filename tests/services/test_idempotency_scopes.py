"""Idempotency keys are scoped to their caller: the same key from two callers is two requests."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import AccountService, LedgerAuditor, TransferBatcher, TransferService
from services.callers import SYSTEM, Caller
from services.errors import IdempotencyConflict, InvalidInput
from tests.support.ledger import open_account, snapshot

MERCHANT = Caller.feature("merchant-payments")


async def test_the_same_key_in_two_scopes_makes_two_transfers(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=1_000)
    b = await open_account(sessions)
    plain = await TransferService(sessions).transfer(a.id, b.id, 100, idempotency_key="k")
    paid = await TransferService(sessions, caller=MERCHANT).transfer(
        a.id, b.id, 250, idempotency_key="k", description="order 17"
    )
    assert paid.id != plain.id
    assert (paid.amount, paid.description, paid.replayed) == (250, "order 17", False)
    assert (await AccountService(sessions).get(b.id)).balance == 350


async def test_the_same_key_in_one_scope_replays_and_moves_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=1_000)
    b = await open_account(sessions)
    transfers = TransferService(sessions, caller=MERCHANT)
    first = await transfers.transfer(a.id, b.id, 250, idempotency_key="k")
    after_first = await snapshot(sessions)
    again = await transfers.transfer(a.id, b.id, 250, idempotency_key="k")
    assert again == replace(first, replayed=True)
    assert not first.replayed
    assert await snapshot(sessions) == after_first


async def test_a_different_request_with_a_key_of_the_same_scope_is_a_conflict(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=1_000)
    b = await open_account(sessions)
    await TransferService(sessions, caller=MERCHANT).transfer(a.id, b.id, 250, idempotency_key="k")
    before = await snapshot(sessions)
    with pytest.raises(IdempotencyConflict):
        await TransferService(sessions, caller=MERCHANT).transfer(
            a.id, b.id, 251, idempotency_key="k"
        )
    assert await snapshot(sessions) == before


async def test_deposit_keys_are_scoped_too(sessions: async_sessionmaker[AsyncSession]) -> None:
    a = await open_account(sessions)
    first = await AccountService(sessions).deposit(a.id, 5, idempotency_key="d")
    other = await AccountService(sessions, caller=MERCHANT).deposit(a.id, 5, idempotency_key="d")
    assert first.id != other.id
    assert (await AccountService(sessions).get(a.id)).balance == 10


async def test_one_batch_keeps_scopes_apart_and_replays_within_one(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=1_000)
    b = await open_account(sessions)
    async with TransferBatcher(sessions) as batcher:
        # Gathered before the writer runs, so all four land in one batch.
        results = await asyncio.gather(
            batcher.transfer(a.id, b.id, 10, idempotency_key="k"),
            batcher.transfer(a.id, b.id, 10, idempotency_key="k", caller=MERCHANT),
            batcher.transfer(a.id, b.id, 10, idempotency_key="k", caller=MERCHANT),
            batcher.transfer(a.id, b.id, 10, idempotency_key="k", caller=SYSTEM),
        )
    assert batcher.batches == 1
    system, merchant, merchant_again, system_again = results
    assert system.id != merchant.id
    assert (merchant_again.id, merchant_again.replayed) == (merchant.id, True)
    assert (system_again.id, system_again.replayed) == (system.id, True)
    assert (await AccountService(sessions).get(b.id)).balance == 20
    assert (await LedgerAuditor(sessions).verify()).ok


@pytest.mark.parametrize("name", ["", "Upper", "has space", "x" * 60, "-leading"])
def test_a_feature_name_is_a_short_lower_case_word(name: str) -> None:
    with pytest.raises(InvalidInput):
        Caller.feature(name)
