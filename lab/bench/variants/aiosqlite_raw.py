"""aiosqlite used directly: the "native async" SQLite driver, one worker thread per connection.

Every awaited call (execute, fetch, commit) is queued to the connection's thread and its
result handed back to the loop: one thread hop each. Calls mirror `to_thread per call`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import aiosqlite

from lab.bench.ops import Kind, Meter, Op
from lab.bench.pools import AsyncPool
from lab.bench.sql import SELECT_ONE, history_checksum
from lab.bench.variants.base import AsyncOperation, AsyncVariant, retry_async, sqlite_transient
from lab.bench.variants.sqlite_work import BUSY_TIMEOUT_MS, PRAGMAS, SQL

Work = Callable[[aiosqlite.Connection, Op, Meter], Awaitable[int]]


async def connect(path: str) -> aiosqlite.Connection:
    """An aiosqlite connection set up like the project's engine sets up its connections."""
    connection = await aiosqlite.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    for pragma in PRAGMAS:
        await connection.execute(pragma)
    return connection


class AiosqliteRaw(AsyncVariant):
    """aiosqlite with a pool of `pool` connections."""

    key = "aiosqlite"
    label = "aiosqlite (raw)"
    hop_via = "aiosqlite"
    kinds = frozenset({Kind.TRANSFER, Kind.POINT_READ, Kind.DASHBOARD, Kind.SELECT_ONE})

    async def open(self) -> None:
        self._pool = AsyncPool([await connect(self.target.sqlite_path) for _ in range(self.pool)])

    async def close(self) -> None:
        for connection in self._pool.connections:
            await connection.close()

    def operation(self, kind: Kind) -> AsyncOperation:
        work: dict[Kind, Work] = {
            Kind.TRANSFER: _transfer,
            Kind.POINT_READ: _point_read,
            Kind.DASHBOARD: _dashboard,
            Kind.SELECT_ONE: _select_one,
        }
        if kind not in work:
            raise self.unsupported(kind)
        unit = work[kind]

        async def operation(op: Op, meter: Meter) -> int:
            async with self._pool.connection() as connection:
                return await retry_async(
                    partial(unit, connection, op, meter), sqlite_transient, meter
                )

        return operation


async def _transfer(connection: aiosqlite.Connection, op: Op, meter: Meter) -> int:
    await connection.execute("BEGIN IMMEDIATE")
    meter.statements += 1
    try:
        for statement, params in SQL.legs(op):
            cursor = await connection.execute(statement, params)
            meter.statements += 1
            if cursor.rowcount != 1:
                await connection.rollback()
                return 0
        await connection.execute(SQL.record, SQL.record_params(op))
        meter.statements += 1
        await connection.commit()
        meter.commits += 1
        return 1
    except BaseException:
        await connection.rollback()
        raise


async def _point_read(connection: aiosqlite.Connection, op: Op, meter: Meter) -> int:
    cursor = await connection.execute(SQL.point, (op.account,))
    row = await cursor.fetchone()
    meter.statements += 1
    if row is None:
        raise LookupError(f"account {op.account} does not exist")
    return int(row[0])


async def _dashboard(connection: aiosqlite.Connection, op: Op, meter: Meter) -> int:
    await connection.execute("BEGIN DEFERRED")
    try:
        account = await (await connection.execute(SQL.account, (op.account,))).fetchone()
        cursor = await connection.execute(SQL.history, SQL.history_params(op.account))
        rows = await cursor.fetchall()
        meter.statements += 3
        await connection.commit()
        meter.commits += 1
    except BaseException:
        await connection.rollback()
        raise
    if account is None:
        raise LookupError(f"account {op.account} does not exist")
    return history_checksum([int(row[0]) for row in rows])


async def _select_one(connection: aiosqlite.Connection, op: Op, meter: Meter) -> int:
    await connection.execute(SELECT_ONE)
    meter.statements += 1
    return 1
