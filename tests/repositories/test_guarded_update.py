"""The guarded balance UPDATE refuses, by itself, any change that would go below zero."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import utcnow
from repositories import AccountRepository, Movement, NewTransfer, TransferRepository
from services.outbox import TRANSFER_COMPLETED_EVENT, TRANSFERS_COMPLETED
from tests.support.ledger import open_account, snapshot


async def test_a_delta_that_would_go_below_zero_changes_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    account = await open_account(sessions, balance=5)
    async with sessions() as session, session.begin():
        changed = await AccountRepository(session).apply_deltas(
            {account.id: Movement(sent=6, movements=1)}
        )
    assert changed == 0
    assert (await snapshot(sessions)).balances[account.id] == 5


async def test_a_delta_down_to_exactly_zero_is_applied(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    account = await open_account(sessions, balance=5)
    async with sessions() as session, session.begin():
        changed = await AccountRepository(session).apply_deltas(
            {account.id: Movement(sent=5, movements=1)}
        )
    assert changed == 1
    assert (await snapshot(sessions)).balances[account.id] == 0


async def test_only_the_refused_account_is_left_out_of_the_count(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    poor = await open_account(sessions, balance=1)
    rich = await open_account(sessions, balance=100)
    async with sessions() as session, session.begin():
        changed = await AccountRepository(session).apply_deltas(
            {poor.id: Movement(sent=2, movements=1), rich.id: Movement(sent=2, movements=1)}
        )
    assert changed == 1
    balances = (await snapshot(sessions)).balances
    assert (balances[poor.id], balances[rich.id]) == (1, 98)


async def test_no_deltas_change_no_account(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        assert await AccountRepository(session).apply_deltas({}) == 0


async def test_a_decided_delta_the_database_refuses_fails_the_batch_write_on_every_engine(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # What a caller that decided wrongly (or raced a writer that held no lock) would send:
    # on PostgreSQL the count of changed accounts says so, on SQLite the CHECK fails the
    # commit; either way nothing of the batch commits.
    poor = await open_account(sessions, balance=5)
    other = await open_account(sessions)
    before = await snapshot(sessions)
    row = NewTransfer(
        source_account_id=poor.id,
        destination_account_id=other.id,
        amount=6,
        currency="EUR",
        idempotency_key=None,
        description=None,
        idempotency_scope=None,
    )
    with pytest.raises((RuntimeError, IntegrityError)):
        async with sessions() as session, session.begin():
            await TransferRepository(session).insert_and_apply(
                [row],
                {
                    poor.id: Movement(sent=6, movements=1),
                    other.id: Movement(received=6, movements=1),
                },
                TRANSFERS_COMPLETED,
                utcnow(),
                TRANSFER_COMPLETED_EVENT,
            )
    assert await snapshot(sessions) == before
