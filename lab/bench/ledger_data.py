"""The benchmark's ledger: seeding accounts, resetting them between runs, expected reads.

Every balance enters through a deposit row, so the project's LedgerAuditor can check
a benchmark database exactly as it checks a real one.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from lab.bench.ops import Op
from lab.bench.sql import HISTORY_PAGE, history_checksum
from models import Account, Transfer, User

OPENING_BALANCE: Final = 100_000  # cents per account
MAX_AMOUNT: Final = 5_000  # cents per transfer: large enough that some transfers are refused
CURRENCY: Final = "EUR"


@dataclass(frozen=True, slots=True)
class Ledger:
    """The accounts of one benchmark database."""

    account_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What reads must return: balances and each account's newest transfer ids."""

    balances: dict[int, int]
    newest: dict[int, list[int]] = field(default_factory=dict)

    def point_read(self, op: Op) -> int:
        """What a point read of op.account returns."""
        return self.balances[op.account]

    def dashboard(self, op: Op) -> int:
        """What a dashboard read of op.account returns."""
        return history_checksum(self.newest.get(op.account, []))


async def seed(engine: AsyncEngine, accounts: int) -> Ledger:
    """Create `accounts` users with one EUR account each (empty; `reset` funds them)."""
    async with engine.begin() as connection:
        await connection.execute(
            insert(User),
            [{"email": f"bench{n}@example.com", "name": f"Bench {n}"} for n in range(accounts)],
        )
        owners = (await connection.scalars(select(User.id).order_by(User.id))).all()
        await connection.execute(
            insert(Account),
            [{"owner_id": owner, "currency": CURRENCY, "balance": 0} for owner in owners],
        )
        ids = (await connection.scalars(select(Account.id).order_by(Account.id))).all()
    return Ledger(account_ids=tuple(ids))


async def reset(engine: AsyncEngine, ledger: Ledger, history: Sequence[Op] = ()) -> None:
    """Back to the starting state: one opening deposit per account, then `history` applied.

    Transfers of `history` that the source cannot afford are skipped, as the ledger would
    refuse them. Balances are computed here and written with the rows in one transaction.
    """
    balances = dict.fromkeys(ledger.account_ids, OPENING_BALANCE)
    rows: list[dict[str, object]] = [
        {"source_account_id": None, "destination_account_id": a, "amount": OPENING_BALANCE}
        for a in ledger.account_ids
    ]
    for op in history:
        if balances[op.account] >= op.amount:
            balances[op.account] -= op.amount
            balances[op.other] += op.amount
            rows.append(
                {
                    "source_account_id": op.account,
                    "destination_account_id": op.other,
                    "amount": op.amount,
                }
            )
    set_balance = (
        update(Account)
        .where(Account.id == bindparam("account"))
        .values(balance=bindparam("new_balance"))
    )
    async with engine.begin() as connection:
        await connection.execute(delete(Transfer))
        await connection.execute(insert(Transfer), [{**r, "currency": CURRENCY} for r in rows])
        await connection.execute(
            set_balance, [{"account": a, "new_balance": b} for a, b in balances.items()]
        )


async def snapshot(engine: AsyncEngine) -> Snapshot:
    """Read every balance and every account's newest page of transfer ids."""
    async with engine.connect() as connection:
        balances = {
            int(row.id): int(row.balance)
            for row in await connection.execute(select(Account.id, Account.balance))
        }
        legs = await connection.execute(
            select(Transfer.id, Transfer.source_account_id, Transfer.destination_account_id)
        )
        by_account: defaultdict[int, list[int]] = defaultdict(list)
        for row in legs:
            for account in (row.source_account_id, row.destination_account_id):
                if account is not None:
                    by_account[int(account)].append(int(row.id))
    newest = {a: sorted(ids, reverse=True)[:HISTORY_PAGE] for a, ids in by_account.items()}
    return Snapshot(balances=balances, newest=newest)


def transfer_plan(ledger: Ledger, count: int, rng: random.Random) -> list[Op]:
    """`count` transfers between random distinct accounts."""
    ids = ledger.account_ids
    plan = []
    for _ in range(count):
        source, destination = rng.sample(ids, 2)
        plan.append(Op(source, destination, rng.randint(1, MAX_AMOUNT)))
    return plan


def read_plan(ledger: Ledger, count: int, rng: random.Random) -> list[Op]:
    """`count` reads of random accounts."""
    return [Op(rng.choice(ledger.account_ids)) for _ in range(count)]
