"""AccountService.history_stream: a whole history, oldest first, read in batches from a
server-side cursor inside one read-only snapshot, and authorised like `history`."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import pool_status
from services import AccountService, Caller, TransferService
from services.errors import AccountNotFound, InvalidInput
from tests.support.ledger import open_account
from tests.support.pgbouncer import through_pgbouncer

pytestmark = through_pgbouncer


async def _ledger(sessions: async_sessionmaker[AsyncSession], transfers: int) -> tuple[int, int]:
    mine = await open_account(sessions, balance=1_000)
    theirs = await open_account(sessions)
    money = TransferService(sessions)
    for _ in range(transfers):
        await money.transfer(mine.id, theirs.id, 1)
    return mine.id, mine.owner_id


async def test_the_stream_holds_the_whole_history_oldest_first(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    account_id, _ = await _ledger(sessions, transfers=7)
    accounts = AccountService(sessions)
    async with accounts.history_stream(account_id, batch_size=2) as transfers:
        streamed = [t async for t in transfers]
    page = await accounts.history(account_id, limit=100)
    assert streamed == list(reversed(page.items))
    assert len(streamed) == 8  # the deposit and seven transfers


async def test_the_history_is_read_through_a_server_side_cursor(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    account_id, _ = await _ledger(sessions, transfers=3)
    cursors: list[bool] = []

    def seen(_c: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM transfers" in statement:
            cursors.append(bool(getattr(cursor, "server_side", False)))

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with AccountService(sessions).history_stream(account_id) as transfers:
            assert len([t async for t in transfers]) == 4
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert cursors == [True]


async def test_the_stream_reads_one_snapshot(sessions: async_sessionmaker[AsyncSession]) -> None:
    account_id, _ = await _ledger(sessions, transfers=2)
    other = await open_account(sessions)
    accounts = AccountService(sessions)
    async with accounts.history_stream(account_id, batch_size=1) as transfers:
        first = await anext(transfers)
        await TransferService(sessions).transfer(account_id, other.id, 5)  # commits meanwhile
        rest = [t async for t in transfers]
    assert [first, *rest] == list(reversed((await accounts.history(account_id)).items[1:]))


async def test_another_users_account_reads_as_missing_before_any_row(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    account_id, _ = await _ledger(sessions, transfers=1)
    stranger = await open_account(sessions)
    as_stranger = AccountService(sessions, caller=Caller.user(stranger.owner_id))
    with pytest.raises(AccountNotFound):
        async with as_stranger.history_stream(account_id):
            pytest.fail("the block must not run")


async def test_the_owner_streams_their_own_history(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    account_id, owner_id = await _ledger(sessions, transfers=2)
    as_owner = AccountService(sessions, caller=Caller.user(owner_id))
    async with as_owner.history_stream(account_id) as transfers:
        assert len([t async for t in transfers]) == 3


async def test_stopping_early_returns_the_connection(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    account_id, _ = await _ledger(sessions, transfers=5)
    async with AccountService(sessions).history_stream(account_id, batch_size=1) as transfers:
        await anext(transfers)
    assert pool_status(engine).checked_out == 0


@pytest.mark.parametrize("batch_size", [0, 10_001, "5"])
async def test_a_bad_batch_size_is_refused(
    sessions: async_sessionmaker[AsyncSession], batch_size: Any
) -> None:
    with pytest.raises(InvalidInput, match="batch_size"):
        async with AccountService(sessions).history_stream(1, batch_size=batch_size):
            pass
