"""asyncpg used directly: PostgreSQL's native async driver, no thread, no ORM."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final

import asyncpg

from lab.bench.ops import Kind, Meter, Op
from lab.bench.sql import SLOW_LOOKUP_SECONDS, Statements
from lab.bench.variants.base import AsyncOperation, AsyncVariant, Refused, pg_transient, retry_async

SQL: Final = Statements("numeric")

Work = Callable[[Any, Op, Meter], Awaitable[int]]


class AsyncpgRaw(AsyncVariant):
    """asyncpg with its own pool of `pool` connections."""

    key = "asyncpg"
    label = "asyncpg (raw)"
    kinds = frozenset({Kind.TRANSFER, Kind.POINT_READ, Kind.SLOW_LOOKUP})

    async def open(self) -> None:
        self._pool: Any = await asyncpg.create_pool(
            self.target.postgres_dsn, min_size=self.pool, max_size=self.pool
        )

    async def close(self) -> None:
        await self._pool.close()

    def operation(self, kind: Kind) -> AsyncOperation:
        work: dict[Kind, Work] = {
            Kind.TRANSFER: _transfer,
            Kind.POINT_READ: _point_read,
            Kind.SLOW_LOOKUP: _slow_lookup,
        }
        if kind not in work:
            raise self.unsupported(kind)
        unit = work[kind]

        async def operation(op: Op, meter: Meter) -> int:
            async with self._pool.acquire() as connection:
                return await retry_async(partial(unit, connection, op, meter), pg_transient, meter)

        return operation


async def _transfer(connection: Any, op: Op, meter: Meter) -> int:
    try:
        async with connection.transaction():
            for statement, params in SQL.legs(op):
                status = await connection.execute(statement, *params)
                meter.statements += 1
                if status != "UPDATE 1":
                    raise Refused
            await connection.execute(SQL.record, *SQL.record_params(op))
            meter.statements += 1
    except Refused:
        return 0
    meter.commits += 1
    return 1


async def _point_read(connection: Any, op: Op, meter: Meter) -> int:
    meter.statements += 1
    return int(await connection.fetchval(SQL.point, op.account))


async def _slow_lookup(connection: Any, op: Op, meter: Meter) -> int:
    await connection.execute(SQL.sleep, SLOW_LOOKUP_SECONDS)
    value = await connection.fetchval(SQL.point, op.account)
    meter.statements += 2
    return int(value)
