"""A malformed batch is InvalidInput before anything is applied: no request of it runs."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import TransferRequest, TransferService
from services.errors import InvalidAmount, InvalidInput
from tests.support.ledger import open_account, snapshot


@pytest.mark.parametrize("requests", [None, 5, "abc", b"x", {"a": 1}])
async def test_a_batch_that_is_not_a_sequence_is_refused(
    sessions: async_sessionmaker[AsyncSession], requests: Any
) -> None:
    with pytest.raises(InvalidInput, match="sequence of TransferRequest"):
        await TransferService(sessions).transfer_many(requests)


async def test_an_item_that_is_not_a_request_is_refused_and_nothing_applied(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=100)
    b = await open_account(sessions)
    before = await snapshot(sessions)
    batch: list[Any] = [TransferRequest.of(a.id, b.id, 10), "not a request"]
    with pytest.raises(InvalidInput, match="must be a TransferRequest"):
        await TransferService(sessions).transfer_many(batch)
    assert await snapshot(sessions) == before


async def test_a_request_built_without_of_is_checked_like_one_built_with_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # Before: a bool amount reached the database's CHECK constraint (an IntegrityError).
    a = await open_account(sessions, balance=100)
    before = await snapshot(sessions)
    raw = TransferRequest(source_id=None, destination_id=a.id, amount=False)
    with pytest.raises(InvalidAmount):
        await TransferService(sessions).transfer_many([raw])
    assert await snapshot(sessions) == before
