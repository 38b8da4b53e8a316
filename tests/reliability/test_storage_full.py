"""A database with no room to write (tests/support/storage.py): every caller gets
StorageFull, no acknowledged transfer is lost, the audit stays clean, and writes succeed
again once space is back. Over HTTP and the CLI: tests/api/test_storage_full_http.py."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import DatabaseSettings, create_engine, create_session_factory, migrations
from models import Transfer
from services import AccountService, LedgerAuditor, TransferBatcher, TransferService
from services.errors import StorageFull
from tests.support.backends import NewDatabase
from tests.support.ledger import open_account
from tests.support.storage import little_room

TASKS = 16
MOST_TRANSFERS_PER_TASK = 2_000  # far more than fits: the loop ends on StorageFull


async def _transfers(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Transfer)) or 0)


async def test_a_full_database_is_storage_full_for_every_caller_and_loses_nothing(
    new_database: NewDatabase,
) -> None:
    engine = create_engine(DatabaseSettings(url=await new_database()))
    try:
        await migrations.upgrade(engine)
        sessions = create_session_factory(engine)
        source = await open_account(sessions, balance=10**9)
        destination = await open_account(sessions)
        acknowledged = 0
        async with little_room(engine, after=await _transfers(sessions) + 300) as full:
            cramped = create_session_factory(full)
            direct = TransferService(cramped)
            async with TransferBatcher(cramped) as batcher:

                async def client(n: int) -> type[BaseException] | None:
                    nonlocal acknowledged
                    transfer = batcher.transfer if n % 2 else direct.transfer
                    for _ in range(MOST_TRANSFERS_PER_TASK):
                        try:
                            await transfer(source.id, destination.id, 1)
                        except Exception as exc:
                            return type(exc)
                        acknowledged += 1
                    return None

                endings = await asyncio.gather(*(client(n) for n in range(TASKS)))
        assert set(endings) == {StorageFull}
        assert acknowledged > 0
        assert await AccountService(sessions).balance(destination.id) == acknowledged
        assert (await LedgerAuditor(sessions).verify()).ok
        # Space is back: writes succeed again.
        await TransferService(sessions).transfer(source.id, destination.id, 1)
        assert await AccountService(sessions).balance(destination.id) == acknowledged + 1
    finally:
        await engine.dispose()
