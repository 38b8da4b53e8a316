"""The example consumer's read model: per-account statement lines."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import StatementLine


class StatementRepository:
    """Statement lines: the latest balance per account, new lines, an account's lines."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def balances(self, account_ids: Collection[int]) -> dict[int, int]:
        """The balance of each account's latest line; accounts without lines are absent.
        One query over the (account_id, id) index."""
        if not account_ids:
            return {}
        latest = (
            select(func.max(StatementLine.id))
            .where(StatementLine.account_id.in_(set(account_ids)))
            .group_by(StatementLine.account_id)
        )
        rows = await self.session.execute(
            select(StatementLine.account_id, StatementLine.balance).where(
                StatementLine.id.in_(latest)
            )
        )
        return {int(account): int(balance) for account, balance in rows}

    async def add_many(self, lines: Sequence[dict[str, Any]]) -> None:
        """Insert `lines` (column dicts) in order, so their ids follow the list."""
        if lines:
            table = cast(Table, StatementLine.__table__)
            await self.session.execute(insert(table), list(lines))

    async def lines(self, account_id: int, *, limit: int) -> Sequence[StatementLine]:
        """An account's latest `limit` lines, newest first."""
        rows = await self.session.scalars(
            select(StatementLine)
            .where(StatementLine.account_id == account_id)
            .order_by(StatementLine.id.desc())
            .limit(limit)
        )
        return rows.all()
