"""Repositories: CRUD, pagination and the guarded balance update, inside a caller's transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import Account, User, utcnow
from repositories import (
    AccountRepository,
    Movement,
    NewTransfer,
    TransferRepository,
    UserRepository,
)


async def _users(session: AsyncSession, count: int) -> list[User]:
    repo = UserRepository(session)
    return [await repo.add(User(email=f"r{i}@example.com", name=f"R {i}")) for i in range(count)]


async def test_add_assigns_an_id_and_get_finds_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        (user,) = await _users(session, 1)
        assert user.id is not None
        assert await UserRepository(session).get(user.id) is user
        assert await UserRepository(session).get(user.id + 1000) is None


async def test_get_by_email_finds_the_stored_address(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        (user,) = await _users(session, 1)
        assert await UserRepository(session).get_by_email("r0@example.com") is user
        assert await UserRepository(session).get_by_email("nobody@example.com") is None


async def test_get_many_returns_found_rows_by_id_and_skips_missing_ones(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        users = await _users(session, 3)
        found = await UserRepository(session).get_many([users[0].id, users[2].id, 999_999])
        assert set(found) == {users[0].id, users[2].id}
        assert await UserRepository(session).get_many([]) == {}


async def test_list_pages_through_all_rows_in_id_order_and_count_agrees(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        users = await _users(session, 7)
        repo = UserRepository(session)
        seen: list[int] = []
        after: int | None = None
        while page := await repo.list(limit=3, after_id=after):
            seen.extend(u.id for u in page)
            after = page[-1].id
        assert seen == sorted(u.id for u in users)
        assert await repo.count() == 7


async def test_a_rolled_back_transaction_leaves_no_rows(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        await _users(session, 2)
        await session.rollback()
    async with sessions() as session:
        assert await UserRepository(session).count() == 0


async def test_apply_deltas_moves_balances_relative_to_the_stored_value(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        (user,) = await _users(session, 1)
        repo = AccountRepository(session)
        a = await repo.add(Account(owner_id=user.id, currency="EUR", balance=100))
        b = await repo.add(Account(owner_id=user.id, currency="EUR", balance=0))
        assert (
            await repo.apply_deltas(
                {a.id: Movement(sent=40, movements=1), b.id: Movement(received=40, movements=1)}
            )
            == 2
        )
        locked = await repo.lock([b.id, a.id])
        assert [(x.id, x.balance) for x in locked.values()] == [(a.id, 60), (b.id, 40)]


async def test_apply_deltas_refuses_to_take_a_balance_below_zero(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        (user,) = await _users(session, 1)
        repo = AccountRepository(session)
        a = await repo.add(Account(owner_id=user.id, currency="EUR", balance=10))
        b = await repo.add(Account(owner_id=user.id, currency="EUR", balance=0))
        # One of two accounts changed: the caller must fail the transaction.
        assert (
            await repo.apply_deltas(
                {a.id: Movement(sent=11, movements=1), b.id: Movement(received=11, movements=1)}
            )
            == 1
        )
        locked = await repo.lock([a.id, b.id])
        assert [x.balance for x in locked.values()] == [10, 11]


async def test_apply_decided_deltas_moves_balances_by_commit(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        (user,) = await _users(session, 1)
        repo = AccountRepository(session)
        a = await repo.add(Account(owner_id=user.id, currency="EUR", balance=100))
        b = await repo.add(Account(owner_id=user.id, currency="EUR", balance=5))
        await repo.apply_decided_deltas(
            {a.id: Movement(sent=40, movements=1), b.id: Movement(received=40, movements=1)},
            utcnow(),
        )
    async with sessions() as session:
        locked = await AccountRepository(session).lock([a.id, b.id])
        assert [x.balance for x in locked.values()] == [60, 45]


async def _overdraw_decided(
    sessions: async_sessionmaker[AsyncSession], source_id: int, destination_id: int
) -> None:
    async with sessions() as session, session.begin():
        deltas = {
            source_id: Movement(sent=11, movements=1),
            destination_id: Movement(received=11, movements=1),
        }
        await AccountRepository(session).apply_decided_deltas(deltas, utcnow())


async def test_apply_decided_deltas_fails_the_transaction_rather_than_go_below_zero(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        (user,) = await _users(session, 1)
        repo = AccountRepository(session)
        a = await repo.add(Account(owner_id=user.id, currency="EUR", balance=10))
        b = await repo.add(Account(owner_id=user.id, currency="EUR", balance=0))
    # SQLite: the balance CHECK constraint fails the deferred UPDATE, at COMMIT at the
    # latest; PostgreSQL: the guarded UPDATE changes one account of two.
    with pytest.raises((IntegrityError, RuntimeError)):
        await _overdraw_decided(sessions, a.id, b.id)
    async with sessions() as session:
        locked = await AccountRepository(session).lock([a.id, b.id])
        assert [x.balance for x in locked.values()] == [10, 0]


async def test_history_is_newest_first_and_keyset_paginated(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        (user,) = await _users(session, 1)
        accounts = AccountRepository(session)
        a = await accounts.add(Account(owner_id=user.id, currency="EUR", balance=0))
        b = await accounts.add(Account(owner_id=user.id, currency="EUR", balance=0))
        repo = TransferRepository(session)
        ids = await repo.insert_unless_key_taken(
            [NewTransfer(None, a.id, i + 1, "EUR", None, None, None) for i in range(5)]
            + [NewTransfer(b.id, None, 9, "EUR", None, None, None)],
            utcnow(),
        )
        assert ids is not None
        a_ids = ids[:5]
        first = await repo.history(a.id, limit=3)
        second = await repo.history(a.id, limit=3, before_id=first[-1].id)
        assert [t.id for t in [*first, *second]] == sorted(a_ids, reverse=True)


async def test_insert_many_returns_ids_in_row_order(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        (user,) = await _users(session, 1)
        a = await AccountRepository(session).add(Account(owner_id=user.id, currency="EUR"))
        repo = TransferRepository(session)
        amounts = (5, 1, 4, 2, 3)
        rows = [NewTransfer(None, a.id, amount, "EUR", None, None, None) for amount in amounts]
        ids = await repo.insert_unless_key_taken(rows, utcnow())
        assert ids is not None
        stored = await repo.get_many(ids)
        assert [stored[i].amount for i in ids] == [5, 1, 4, 2, 3]


async def test_insert_inserts_nothing_when_one_idempotency_key_is_taken(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        (user,) = await _users(session, 1)
        a = await AccountRepository(session).add(Account(owner_id=user.id, currency="EUR"))
        repo = TransferRepository(session)
        assert await repo.insert_unless_key_taken(
            [NewTransfer(None, a.id, 1, "EUR", "taken", None, "system")], utcnow()
        )
        rows = [
            NewTransfer(None, a.id, 2, "EUR", "fresh", None, "system"),
            NewTransfer(None, a.id, 3, "EUR", None, None, None),
            NewTransfer(None, a.id, 4, "EUR", "taken", None, "system"),
        ]
        assert await repo.insert_unless_key_taken(rows, utcnow()) is None
        assert await repo.count() == 1


async def test_idempotency_lookup_returns_transfers_by_key(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        (user,) = await _users(session, 1)
        a = await AccountRepository(session).add(Account(owner_id=user.id, currency="EUR"))
        repo = TransferRepository(session)
        (t_id,) = await repo.insert_unless_key_taken(
            [NewTransfer(None, a.id, 1, "EUR", "k", None, "system")], utcnow()
        ) or [0]
        found = await repo.by_idempotency_keys([("system", "k"), ("system", "other")])
        assert list(found) == [("system", "k")]
        assert found[("system", "k")].id == t_id


async def test_apply_deltas_moves_the_kept_totals_with_the_balance_past_64_bits(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # The guarded update and the decided one (SQLite's deferred UPDATE, PostgreSQL's
    # statement inside insert_and_apply): each total exact as its two halves, whatever
    # low halves the caller read (the second call's are stale: it says 0).
    big = 2**63 - 1
    async with sessions() as session, session.begin():
        (user,) = await _users(session, 1)
        repo = AccountRepository(session)
        a = await repo.add(Account(owner_id=user.id, currency="EUR", balance=0))
        assert await repo.apply_deltas({a.id: Movement(received=big, movements=1)}) == 1
        await repo.apply_decided_deltas(
            {a.id: Movement(received=2**32 + 5, sent=big, movements=3)}, utcnow()
        )
    async with sessions() as session:
        balance, rh, rl, sh, sl, movements = (
            await session.execute(
                select(
                    Account.balance,
                    Account.received_high,
                    Account.received_low,
                    Account.sent_high,
                    Account.sent_low,
                    Account.movements,
                ).where(Account.id == a.id)
            )
        ).one()
    assert (balance, (rh << 32) + rl, (sh << 32) + sl, movements) == (
        2**32 + 5,
        big + 2**32 + 5,
        big,
        4,
    )


def test_a_movement_carries_out_of_the_low_half_it_was_told_of() -> None:
    low = 2**32 - 3
    delta, rh, rl, sh, sl, n = Movement(
        received=2**33 + 7, movements=2, received_low=low
    ).parameters()
    assert (delta, rh, rl, sh, sl, n) == (2**33 + 7, 3, 7 - 2**32, 0, 0, 2)
    assert 0 <= low + rl < 2**32
