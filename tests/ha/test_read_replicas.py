"""Reads on a standby (DATABASE_READ_URL) that still see the caller's own writes.

The standby is made to lag for real: replay paused with pg_wal_replay_pause(), so a
write committed on the primary is received by the standby but not applied there."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import DatabaseSettings, create_engine, create_session_factory, current_position
from lab.servers.formation import Formation
from services import AccountService
from services.errors import AccountNotFound
from tests.support.ledger import open_account


@pytest.fixture
async def routed(formation: Formation) -> AsyncIterator[AsyncEngine]:
    """An engine whose standby_ok reads go to the standby (pinned to it, no fallback)."""
    standby = await asyncio.to_thread(formation.standby)  # asks the monitor: blocking
    settings = DatabaseSettings(
        url=formation.url(), read_url=formation.node_url(standby), pool_size=2
    )
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
def paused_standby(formation: Formation) -> Iterator[str]:
    """The standby, with WAL replay paused for the test."""
    standby = formation.standby()
    formation.run_sql(standby, "SELECT pg_wal_replay_pause()")
    yield standby
    formation.run_sql(standby, "SELECT pg_wal_replay_resume()")


async def test_a_read_after_a_write_sees_it_though_the_standby_lags(
    routed: AsyncEngine, paused_standby: str
) -> None:
    sessions = create_session_factory(routed)
    account = await open_account(sessions, 700)  # committed on the primary after the pause

    history = await AccountService(sessions).history(account.id)

    assert [t.amount for t in history.items] == [700]


async def test_without_the_writes_position_the_same_read_on_the_lagging_standby_misses_it(
    routed: AsyncEngine, paused_standby: str
) -> None:
    sessions = create_session_factory(routed)
    account = await open_account(sessions, 700)

    # The same read in a context that does not carry the write's position: what a client
    # gets that drops the Ledger-Read-After header, or routing without read-your-writes.
    # The standby has not replayed the account, let alone its deposit.
    with pytest.raises(AccountNotFound):
        await asyncio.create_task(
            AccountService(sessions).history(account.id), context=contextvars.Context()
        )
    assert current_position().lsn is not None


async def test_reads_are_served_from_the_primary_while_the_standby_is_down(
    formation: Formation,
) -> None:
    standby = await asyncio.to_thread(formation.standby)
    engine = create_engine(
        DatabaseSettings(url=formation.url(), read_url=formation.read_url(), pool_size=2)
    )
    sessions: async_sessionmaker[AsyncSession] = create_session_factory(engine)
    try:
        account = await open_account(sessions, 300)
        await asyncio.to_thread(formation.kill, standby)

        history = await AccountService(sessions).history(account.id)

        assert [t.amount for t in history.items] == [300]
    finally:
        await engine.dispose()
        await asyncio.to_thread(formation.restart, standby)
        await asyncio.to_thread(formation.wait_healthy)
