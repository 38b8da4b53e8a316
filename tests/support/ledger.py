"""Shared test helpers: build a small ledger and snapshot its state."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import Account, Base, Transfer, User
from services import AccountRecord, AccountService, TransferService, UserService

_emails = itertools.count(1)


@dataclass(frozen=True)
class Snapshot:
    """Everything a failed request must leave untouched."""

    balances: dict[int, int]
    transfers: int
    users: int


async def snapshot(sessions: async_sessionmaker[AsyncSession]) -> Snapshot:
    """Read balances and row counts."""
    async with sessions() as session:
        rows = await session.execute(select(Account.id, Account.balance))
        # Not dict(rows): a Result has keys(), so dict() would treat it as a mapping.
        balances = {row.id: row.balance for row in rows}
        transfers = await session.scalar(select(func.count()).select_from(Transfer))
        users = await session.scalar(select(func.count()).select_from(User))
    return Snapshot(balances=balances, transfers=int(transfers or 0), users=int(users or 0))


async def every_table(sessions: async_sessionmaker[AsyncSession]) -> dict[str, list[str]]:
    """Every row of every table the models declare, as text, by table: a model added
    later is in it without anyone listing it here."""
    state: dict[str, list[str]] = {}
    async with sessions() as session:
        for table in Base.metadata.sorted_tables:
            rows = await session.execute(select(table))
            state[table.name] = sorted(repr(tuple(row)) for row in rows)
    return state


async def open_account(
    sessions: async_sessionmaker[AsyncSession], balance: int = 0, currency: str = "EUR"
) -> AccountRecord:
    """A new user with one account holding `balance` (deposited, so history agrees)."""
    user = await UserService(sessions).register(f"user{next(_emails)}@example.com", "Test User")
    accounts = AccountService(sessions)
    account = await accounts.open(user.id, currency)
    if balance:
        await accounts.deposit(account.id, balance)
    return await accounts.get(account.id)


def services(
    sessions: async_sessionmaker[AsyncSession],
) -> tuple[UserService, AccountService, TransferService]:
    """The three services over one session factory."""
    return UserService(sessions), AccountService(sessions), TransferService(sessions)
