"""The example consumer's read model: per-account statement lines."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Final, NamedTuple

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from db.sqlite_one_hop import DEFERRED
from models import StatementLine


class NewLine(NamedTuple):
    """The columns of a statement line about to be inserted."""

    account_id: int
    transfer_id: int
    event_id: str
    amount: int
    balance: int
    currency: str
    occurred_at: datetime


class StatementRepository:
    """Statement lines: the latest balance per account, new lines, an account's lines."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def balances(self, account_ids: Collection[int]) -> dict[int, int]:
        """The balance of each account's latest line; accounts without lines are absent.

        One statement: per account, the (account_id, id) index read backwards for one row,
        so the cost is the number of accounts, however long their statements are.
        """
        if not account_ids:
            return {}
        ids = sorted(set(account_ids))
        if self.session.get_bind().dialect.name == "postgresql":
            rows = await self.session.execute(_BALANCES_PG, {"ids": ids})
        else:
            rows = await self.session.execute(_BALANCES_SQLITE, {"ids": json.dumps(ids)})
        return {int(account): int(balance) for account, balance in rows if balance is not None}

    async def add_many(self, lines: Sequence[NewLine]) -> None:
        """Insert `lines` in order, so their ids follow the list: one statement whose rows
        arrive as one parameter per column (PostgreSQL) or one JSON array (SQLite)."""
        if not lines:
            return
        if self.session.get_bind().dialect.name == "postgresql":
            columns = list(zip(*lines, strict=True))
            params = dict(zip(NewLine._fields, columns, strict=True))
            await self.session.execute(_ADD_PG, params)
        else:
            rows = [[*line[:-1], _sqlite_time(line.occurred_at)] for line in lines]
            await self.session.execute(_ADD_SQLITE, {"rows": json.dumps(rows)})

    async def lines(self, account_id: int, *, limit: int) -> Sequence[StatementLine]:
        """An account's latest `limit` lines, newest first."""
        rows = await self.session.scalars(
            select(StatementLine)
            .where(StatementLine.account_id == account_id)
            .order_by(StatementLine.id.desc())
            .limit(limit)
        )
        return rows.all()


_LATEST_BALANCE: Final = (
    "(SELECT l.balance FROM statement_lines AS l WHERE l.account_id = a.id"
    " ORDER BY l.id DESC LIMIT 1)"
)
_BALANCES_PG: Final = text(
    f"SELECT a.id, {_LATEST_BALANCE} FROM unnest(CAST(:ids AS BIGINT[])) AS a(id)"
)
_BALANCES_SQLITE: Final = text(
    f"SELECT a.id, {_LATEST_BALANCE} FROM (SELECT value AS id FROM json_each(:ids)) AS a"
)
_ADD_PG: Final = text(
    """INSERT INTO statement_lines (account_id, transfer_id, event_id, amount, balance,
                             currency, occurred_at)
SELECT l.account_id, l.transfer_id, l.event_id, l.amount, l.balance, l.currency, l.occurred_at
FROM unnest(CAST(:account_id AS BIGINT[]), CAST(:transfer_id AS BIGINT[]),
            CAST(:event_id AS VARCHAR[]), CAST(:amount AS BIGINT[]), CAST(:balance AS BIGINT[]),
            CAST(:currency AS VARCHAR[]), CAST(:occurred_at AS TIMESTAMP WITH TIME ZONE[]))
     WITH ORDINALITY AS l(account_id, transfer_id, event_id, amount, balance, currency,
                          occurred_at, position)
ORDER BY l.position"""
)
_ADD_SQLITE: Final = text(
    f"""INSERT {DEFERRED} INTO statement_lines (account_id, transfer_id, event_id, amount, balance,
                             currency, occurred_at)
SELECT json_extract(r.value, '$[0]'), json_extract(r.value, '$[1]'),
       json_extract(r.value, '$[2]'), json_extract(r.value, '$[3]'),
       json_extract(r.value, '$[4]'), json_extract(r.value, '$[5]'),
       json_extract(r.value, '$[6]')
FROM json_each(:rows) AS r
ORDER BY r.key"""
)


def _sqlite_time(value: datetime) -> str:
    # How SQLAlchemy stores a UTCDateTime on SQLite: naive UTC text with microseconds.
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
