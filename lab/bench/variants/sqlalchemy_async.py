"""SQLAlchemy async Core on the project's engine (db.create_engine): no ORM, no session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncEngine

from db import DatabaseSettings, create_engine, read_only_options
from lab.bench.ops import Kind, Meter, Op
from lab.bench.sql import SLOW_LOOKUP_SECONDS, history_checksum
from lab.bench.variants import core_statements as core
from lab.bench.variants.base import AsyncOperation, AsyncVariant, Refused, retry_async
from services.transactions import is_transient

Work = Callable[[Op], Awaitable[int]]


class SqlalchemyAsyncCore(AsyncVariant):
    """Core statements through AsyncConnection, pool of `pool`, the project's BEGIN handling."""

    key = "sqlalchemy-core"
    label = "SQLAlchemy async Core"
    hop_via = "aiosqlite"
    kinds = frozenset(
        {Kind.TRANSFER, Kind.POINT_READ, Kind.DASHBOARD, Kind.SELECT_ONE, Kind.SLOW_LOOKUP}
    )

    # The project's SQLite adapter (db/sqlite_one_hop.py): one thread hop per statement.
    one_hop: ClassVar[bool] = True

    async def open(self) -> None:
        settings = DatabaseSettings(
            url=self.target.url, pool_size=self.pool, max_overflow=0, sqlite_one_hop=self.one_hop
        )
        self._engine = create_engine(settings)
        # Reads get the project's read-only transaction: deferred on SQLite, REPEATABLE
        # READ READ ONLY on PostgreSQL.
        self._reader = self._engine.execution_options(
            **read_only_options(self._engine.dialect.name)
        )
        # Open the pool's connections now, so that connecting is not timed.
        connections = [await self._engine.connect() for _ in range(self.pool)]
        for connection in connections:
            await connection.close()

    async def close(self) -> None:
        await self._engine.dispose()

    def engines(self) -> Sequence[AsyncEngine]:
        return (self._engine,)

    def operation(self, kind: Kind) -> AsyncOperation:
        work: dict[Kind, Work] = {
            Kind.TRANSFER: self._transfer,
            Kind.POINT_READ: self._point_read,
            Kind.DASHBOARD: self._dashboard,
            Kind.SELECT_ONE: self._select_one,
            Kind.SLOW_LOOKUP: self._slow_lookup,
        }
        if kind not in work:
            raise self.unsupported(kind)
        unit = work[kind]

        async def operation(op: Op, meter: Meter) -> int:
            # Statements and commits are counted by db.EngineMonitor, not here.
            return await retry_async(partial(unit, op), is_transient, meter)

        return operation

    async def _transfer(self, op: Op) -> int:
        try:
            async with self._engine.begin() as connection:
                for statement, params in core.legs(op):
                    result = await connection.execute(statement, params)
                    if result.rowcount != 1:
                        raise Refused
                await connection.execute(core.RECORD, core.record_params(op))
        except Refused:
            return 0
        return 1

    async def _point_read(self, op: Op) -> int:
        async with self._reader.connect() as connection:
            result = await connection.execute(core.POINT, {"account_id": op.account})
            return int(result.scalar_one())

    async def _dashboard(self, op: Op) -> int:
        async with self._reader.connect() as connection:
            params = {"account_id": op.account}
            account = (await connection.execute(core.ACCOUNT, params)).first()
            rows = (await connection.execute(core.HISTORY, params)).all()
        if account is None:
            raise LookupError(f"account {op.account} does not exist")
        return history_checksum([int(row.id) for row in rows])

    async def _select_one(self, op: Op) -> int:
        async with self._reader.connect() as connection:
            return int((await connection.execute(core.SELECT_ONE)).scalar_one())

    async def _slow_lookup(self, op: Op) -> int:
        async with self._reader.connect() as connection:
            await connection.execute(core.SLEEP, {"seconds": SLOW_LOOKUP_SECONDS})
            result = await connection.execute(core.POINT, {"account_id": op.account})
            return int(result.scalar_one())


class SqlalchemyAsyncCoreStock(SqlalchemyAsyncCore):
    """The same on SQLAlchemy's stock aiosqlite adapter: a hop per cursor call."""

    key = "sqlalchemy-core-stock"
    label = "SQLAlchemy async Core, stock adapter"
    one_hop = False
