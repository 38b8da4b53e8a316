"""The ORM read-modify-write that people write without this project's engine setup.

`session.get` both accounts, change `.balance` in Python, commit, on a plain
`create_async_engine(url)`. On SQLite the sqlite3 driver's legacy transaction control
sends no BEGIN before a SELECT, so the reads happen outside the transaction; on
PostgreSQL READ COMMITTED takes no lock on a plain SELECT. Either way two concurrent
transfers can read the same balance and the later commit overwrites the earlier one:
lost updates. It is benchmarked to show that being fast is worth nothing if it is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from lab.bench.ops import Kind, Meter, Op
from lab.bench.variants.base import AsyncOperation, AsyncVariant
from lab.bench.variants.sqlite_work import PRAGMAS
from models import Account, Transfer


class NaiveOrm(AsyncVariant):
    """get, modify, commit; no lock, no guard in SQL, no retry."""

    key = "naive-orm"
    label = "naive ORM read-modify-write"
    hop_via = "aiosqlite"
    kinds = frozenset({Kind.TRANSFER})
    unsafe = True

    async def open(self) -> None:
        self._engine = create_async_engine(self.target.url, pool_size=self.pool, max_overflow=0)
        if self.target.backend == "sqlite":
            # The same PRAGMAs as every other row (so speed differs only by code), but none
            # of the project's transaction handling: that is what this row is about.
            @event.listens_for(self._engine.sync_engine, "connect")
            def _pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
                cursor = dbapi_connection.cursor()
                for pragma in PRAGMAS:
                    cursor.execute(pragma)
                cursor.close()

        self._sessions = async_sessionmaker(self._engine)
        connections = [await self._engine.connect() for _ in range(self.pool)]
        for connection in connections:
            await connection.close()

    async def close(self) -> None:
        await self._engine.dispose()

    def engines(self) -> Sequence[AsyncEngine]:
        return (self._engine,)

    def operation(self, kind: Kind) -> AsyncOperation:
        if kind is not Kind.TRANSFER:
            raise self.unsupported(kind)
        return self._transfer

    async def _transfer(self, op: Op, meter: Meter) -> int:
        session: AsyncSession
        async with self._sessions() as session:
            source = await session.get(Account, op.account)
            destination = await session.get(Account, op.other)
            if source is None or destination is None:
                raise LookupError(f"account {op.account} or {op.other} does not exist")
            if source.balance < op.amount:
                return 0
            source.balance -= op.amount
            destination.balance += op.amount
            session.add(
                Transfer(
                    source_account_id=source.id,
                    destination_account_id=destination.id,
                    amount=op.amount,
                    currency=source.currency,
                )
            )
            await session.commit()
        return 1
