"""Queries over the transfer history."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import BigInteger, delete, or_, select, true, tuple_, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import cast

from models import Account, Transfer
from repositories.base import Repository
from repositories.exact_sums import joined, split_sum


class AccountFlow(NamedTuple):
    """An account's stored balance next to what its history says it should be."""

    account_id: int
    balance: int
    incoming: int
    outgoing: int


class LedgerTotals(NamedTuple):
    """Money that entered and left the ledger, and what the accounts hold."""

    deposits: int
    withdrawals: int
    balances: int


class NewTransfer(NamedTuple):
    """The columns of a transfer about to be inserted."""

    source_account_id: int | None
    destination_account_id: int | None
    amount: int
    currency: str
    idempotency_key: str | None
    description: str | None
    idempotency_scope: str | None  # whose key (services/callers.py); None without a key


def _dialect_insert(session: AsyncSession) -> Callable[..., Any]:
    """The INSERT construct with ON CONFLICT support of the session's engine."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert


class TransferRepository(Repository[Transfer]):
    """Transfers: insertion, idempotency lookups, history and audit sums."""

    model = Transfer

    async def insert_unless_key_taken(
        self, rows: Sequence[NewTransfer], created_at: datetime
    ) -> list[int] | None:
        """Insert `rows` and return their ids in row order; None, inserting nothing, if the
        idempotency key of any row is already taken in its scope.

        One INSERT … ON CONFLICT DO NOTHING RETURNING id, sent by SQLAlchemy's
        "insertmanyvalues" as multi-row VALUES pages (1,000 rows each) of a statement
        compiled once and cached. Not the ORM's add_all() + flush(): on SQLite the ORM
        insists on RETURNING rows in parameter order, cannot get that guarantee, and falls
        back to one INSERT, one driver round trip, per row; and not `.values([...])`, which
        builds and compiles a new statement for every batch. A multi-row VALUES assigns
        ascending ids in row order on both engines (rowid under the write lock; the
        sequence, row by row), so sorting the returned ids restores row order.
        On PostgreSQL a key that a concurrent transaction is inserting makes the INSERT wait
        for that transaction: if it commits, the row is skipped, never a unique violation.
        """
        table = Transfer.__table__
        statement = (
            _dialect_insert(self.session)(table)
            .on_conflict_do_nothing(
                index_elements=[table.c.idempotency_scope, table.c.idempotency_key]
            )
            .returning(table.c.id)
        )
        params = [{**row._asdict(), "created_at": created_at} for row in rows]
        ids = sorted((await self.session.execute(statement, params)).scalars().all())
        if len(ids) < len(rows):
            await self.session.execute(delete(Transfer).where(Transfer.id.in_(ids)))
            return None
        return ids

    async def by_idempotency_keys(
        self, keys: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], Transfer]:
        """Existing transfers for any of `keys`, (scope, key) pairs, by pair."""
        if not keys:
            return {}
        rows = await self.session.scalars(
            select(Transfer).where(
                tuple_(Transfer.idempotency_scope, Transfer.idempotency_key).in_(set(keys))
            )
        )
        return {
            (row.idempotency_scope, row.idempotency_key): row
            for row in rows
            if row.idempotency_scope is not None and row.idempotency_key is not None
        }

    async def history(
        self, account_id: int, *, limit: int, before_id: int | None = None
    ) -> Sequence[Transfer]:
        """An account's transfers, newest first, keyset-paginated by id."""
        query = (
            select(Transfer)
            .where(
                or_(
                    Transfer.source_account_id == account_id,
                    Transfer.destination_account_id == account_id,
                )
            )
            .order_by(Transfer.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            query = query.where(Transfer.id < before_id)
        return (await self.session.scalars(query)).all()

    async def flows(self) -> Sequence[AccountFlow]:
        """Every account's balance with the sums of its incoming and outgoing transfers."""
        legs = union_all(
            select(
                Transfer.destination_account_id.label("account_id"),
                Transfer.amount.label("incoming"),
                cast(0, BigInteger).label("outgoing"),
            ).where(Transfer.destination_account_id.is_not(None)),
            select(
                Transfer.source_account_id.label("account_id"),
                cast(0, BigInteger).label("incoming"),
                Transfer.amount.label("outgoing"),
            ).where(Transfer.source_account_id.is_not(None)),
        ).subquery()
        sums = (
            select(
                legs.c.account_id,
                *split_sum(self.session, legs.c.incoming, "incoming"),
                *split_sum(self.session, legs.c.outgoing, "outgoing"),
            )
            .group_by(legs.c.account_id)
            .subquery()
        )
        query = (
            select(
                Account.id,
                Account.balance,
                sums.c.incoming_high,
                sums.c.incoming_low,
                sums.c.outgoing_high,
                sums.c.outgoing_low,
            )
            .outerjoin(sums, sums.c.account_id == Account.id)
            .order_by(Account.id)
        )
        rows = await self.session.execute(query)
        return [
            AccountFlow(int(a), int(b), joined(ih, il), joined(oh, ol))
            for a, b, ih, il, oh, ol in rows
        ]

    async def totals(self) -> LedgerTotals:
        """Deposits, withdrawals and the sum of all balances, read in one statement."""
        deposits = (
            select(*split_sum(self.session, Transfer.amount, "deposits"))
            .where(Transfer.source_account_id.is_(None))
            .subquery()
        )
        withdrawals = (
            select(*split_sum(self.session, Transfer.amount, "withdrawals"))
            .where(Transfer.destination_account_id.is_(None))
            .subquery()
        )
        balances = select(*split_sum(self.session, Account.balance, "balances")).subquery()
        # Each subquery is one aggregate row, so joining them on TRUE gives one row.
        one_row = deposits.join(withdrawals, true()).join(balances, true())
        query = select(deposits, withdrawals, balances).select_from(one_row)
        row = (await self.session.execute(query)).one()
        return LedgerTotals(joined(row[0], row[1]), joined(row[2], row[3]), joined(row[4], row[5]))
