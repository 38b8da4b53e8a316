"""A ledger grown quickly to a given number of transfers: rows written in bulk by the
driver, balances and kept totals computed here, so that the audit can verify the load."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from models import Account
from services import AccountService, UserService

ACCOUNTS: Final = 20
CHUNK: Final = 20_000
DEPOSIT: Final = 10**12
LOW: Final = 2**32


@dataclass
class Ledger:
    """One user with ACCOUNTS accounts, another user's account on the other side of a tenth
    of their transfers (so that the dashboard has counterparties to resolve), and what
    their history adds up to so far."""

    user_id: int
    other_id: int = 0
    account_ids: list[int] = field(default_factory=list)
    loaded: int = 0  # transfers this loader wrote (others are the services')
    balance: dict[int, int] = field(default_factory=dict)
    received: dict[int, int] = field(default_factory=dict)
    sent: dict[int, int] = field(default_factory=dict)
    movements: dict[int, int] = field(default_factory=dict)

    def move(self, source: int | None, destination: int | None, amount: int) -> None:
        """Account for one transfer."""
        if source is not None:
            self.balance[source] -= amount
            self.sent[source] += amount
            self.movements[source] += 1
        if destination is not None:
            self.balance[destination] += amount
            self.received[destination] += amount
            self.movements[destination] += 1
        self.loaded += 1


async def open_ledger(sessions: async_sessionmaker[AsyncSession]) -> Ledger:
    """The user and its accounts, opened through the services."""
    user = await UserService(sessions).register("scale@example.com", "Scale")
    ledger = Ledger(user_id=user.id)
    for _ in range(ACCOUNTS):
        account = await AccountService(sessions).open(user.id, "EUR")
        ledger.account_ids.append(account.id)
    other = await UserService(sessions).register("other@example.com", "Other")
    ledger.other_id = (await AccountService(sessions).open(other.id, "EUR")).id
    for i in (*ledger.account_ids, ledger.other_id):
        ledger.balance[i] = ledger.received[i] = ledger.sent[i] = ledger.movements[i] = 0
    return ledger


async def grow(engine: AsyncEngine, ledger: Ledger, size: int, rng: random.Random) -> None:
    """Add transfers until the ledger holds `size`: a deposit into each account first, then
    transfers between two random accounts (one of them the other user's in a tenth) and an
    occasional withdrawal. The loader's
    accounts are its own: transfers made through the services use other accounts."""
    postgres = engine.dialect.name == "postgresql"
    mark = "$1, $2, $3" if postgres else "?, ?, ?"
    statement = (
        "INSERT INTO transfers (source_account_id, destination_account_id, amount, currency) "
        f"VALUES ({mark}, 'EUR')"
    )
    async with engine.connect() as connection:
        total = int(await connection.scalar(text("SELECT count(*) FROM transfers")) or 0)
    while total < size:
        rows: list[tuple[int | None, int | None, int]] = []
        count = min(CHUNK, size - total)
        total += count
        for _ in range(count):
            row = _next_transfer(ledger, rng)
            ledger.move(*row)
            rows.append(row)
        async with engine.begin() as connection:
            await connection.exec_driver_sql(statement, rows)
    async with engine.begin() as connection:
        for i in (*ledger.account_ids, ledger.other_id):
            await connection.execute(
                update(Account)
                .where(Account.id == i)
                .values(
                    balance=ledger.balance[i],
                    received_high=ledger.received[i] // LOW,
                    received_low=ledger.received[i] % LOW,
                    sent_high=ledger.sent[i] // LOW,
                    sent_low=ledger.sent[i] % LOW,
                    movements=ledger.movements[i],
                )
            )
    if postgres:
        # What a ledger that grew by itself would have had done in the background
        # (statistics, a checkpoint), done now rather than during the measurements.
        # (SQLite checkpoints its WAL as it goes.)
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM ANALYZE transfers"))
            await autocommit.execute(text("VACUUM ANALYZE accounts"))
            await autocommit.execute(text("CHECKPOINT"))


def _next_transfer(ledger: Ledger, rng: random.Random) -> tuple[int | None, int | None, int]:
    ids = ledger.account_ids
    if ledger.loaded <= len(ids):
        return None, [*ids, ledger.other_id][ledger.loaded], DEPOSIT
    if ledger.loaded % 50 == 0:
        return rng.choice(ids), None, rng.randint(1, 100)
    if ledger.loaded % 10 == 5:
        pair = [rng.choice(ids), ledger.other_id]
        rng.shuffle(pair)
        return pair[0], pair[1], rng.randint(1, 100)
    source, destination = rng.sample(ids, 2)
    return source, destination, rng.randint(1, 100)
