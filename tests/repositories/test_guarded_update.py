"""The guarded balance UPDATE refuses, by itself, any change that would go below zero."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from repositories import AccountRepository
from tests.support.ledger import open_account, snapshot


async def test_a_delta_that_would_go_below_zero_changes_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    account = await open_account(sessions, balance=5)
    async with sessions() as session, session.begin():
        changed = await AccountRepository(session).apply_deltas({account.id: -6})
    assert changed == 0
    assert (await snapshot(sessions)).balances[account.id] == 5


async def test_a_delta_down_to_exactly_zero_is_applied(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    account = await open_account(sessions, balance=5)
    async with sessions() as session, session.begin():
        changed = await AccountRepository(session).apply_deltas({account.id: -5})
    assert changed == 1
    assert (await snapshot(sessions)).balances[account.id] == 0


async def test_only_the_refused_account_is_left_out_of_the_count(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    poor = await open_account(sessions, balance=1)
    rich = await open_account(sessions, balance=100)
    async with sessions() as session, session.begin():
        changed = await AccountRepository(session).apply_deltas({poor.id: -2, rich.id: -2})
    assert changed == 1
    balances = (await snapshot(sessions)).balances
    assert (balances[poor.id], balances[rich.id]) == (1, 98)


async def test_no_deltas_change_no_account(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        assert await AccountRepository(session).apply_deltas({}) == 0
