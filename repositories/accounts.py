"""Queries over accounts, including the guarded balance update."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple

from sqlalchemy import case, select, update

from models import Account, utcnow
from repositories.base import Repository


class LockedAccount(NamedTuple):
    """What a transfer needs to know of an account it holds locked."""

    id: int
    currency: str
    balance: int


class AccountRepository(Repository[Account]):
    """Accounts and their balances."""

    model = Account

    async def for_owner(self, owner_id: int) -> Sequence[Account]:
        """Every account of one user, oldest first."""
        query = select(Account).where(Account.owner_id == owner_id).order_by(Account.id)
        return (await self.session.scalars(query)).all()

    async def lock(self, ids: Collection[int]) -> dict[int, LockedAccount]:
        """Read accounts for a write, in id order.

        PostgreSQL takes row locks (FOR UPDATE) in id order, so two transfers touching
        the same pair lock them in the same order and cannot deadlock. SQLite ignores
        FOR UPDATE; there the caller already holds the database write lock because the
        transaction began IMMEDIATE.
        """
        if not ids:
            return {}
        query = (
            select(Account.id, Account.currency, Account.balance)
            .where(Account.id.in_(sorted(set(ids))))
            .order_by(Account.id)
            .with_for_update()
        )
        rows = await self.session.execute(query)
        return {row.id: LockedAccount(row.id, row.currency, row.balance) for row in rows}

    async def apply_deltas(self, deltas: Mapping[int, int]) -> dict[int, int]:
        """Add `delta` to each account's balance in one guarded UPDATE; return new balances.

        The balance changes relative to its stored value (`balance + delta`), never by
        writing back a value read earlier, and the WHERE clause refuses any change that
        would go below zero. An account missing from the result was refused (or does
        not exist); the caller must treat that as a failure of the whole transaction.
        """
        if not deltas:
            return {}
        delta = case(dict(deltas), value=Account.id)
        statement = (
            update(Account)
            .where(Account.id.in_(list(deltas)), Account.balance + delta >= 0)
            .values(balance=Account.balance + delta, updated_at=utcnow())
            .returning(Account.id, Account.balance)
            .execution_options(synchronize_session=False)
        )
        rows = await self.session.execute(statement)
        return {row.id: row.balance for row in rows}
