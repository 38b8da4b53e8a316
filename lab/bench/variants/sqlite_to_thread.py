"""Blocking sqlite3 moved off the event loop with `asyncio.to_thread`, two ways.

Per call: every DB-API call is its own hop to the default executor, which is how a
blocking library is usually "made async". Per transaction: the whole unit of work is one
blocking function and one hop, which is the cheap way to do the same thing.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from functools import partial

from lab.bench.ops import Kind, Meter, Op
from lab.bench.pools import AsyncPool
from lab.bench.sql import SELECT_ONE, history_checksum
from lab.bench.variants import sqlite_work
from lab.bench.variants.base import AsyncOperation, AsyncVariant, retry_async, sqlite_transient
from lab.bench.variants.sqlite_work import SQL

Connection = sqlite3.Connection
AsyncWork = Callable[[Connection, Op, Meter], Awaitable[int]]


class _PooledSqlite(AsyncVariant):
    hop_via = "to_thread"

    async def open(self) -> None:
        self._pool = AsyncPool(
            [
                sqlite_work.connect(self.target.sqlite_path, any_thread=True)
                for _ in range(self.pool)
            ]
        )

    async def close(self) -> None:
        for connection in self._pool.connections:
            connection.close()

    def _pooled(self, work: AsyncWork) -> AsyncOperation:
        async def operation(op: Op, meter: Meter) -> int:
            async with self._pool.connection() as connection:
                return await retry_async(
                    partial(work, connection, op, meter), sqlite_transient, meter
                )

        return operation


class ToThreadPerCall(_PooledSqlite):
    """`await asyncio.to_thread(...)` around each execute, fetch and commit."""

    key = "to_thread-call"
    label = "to_thread per call"
    kinds = frozenset({Kind.TRANSFER, Kind.POINT_READ, Kind.DASHBOARD, Kind.SELECT_ONE})

    def operation(self, kind: Kind) -> AsyncOperation:
        work: dict[Kind, AsyncWork] = {
            Kind.TRANSFER: _transfer,
            Kind.POINT_READ: _point_read,
            Kind.DASHBOARD: _dashboard,
            Kind.SELECT_ONE: _select_one,
        }
        if kind not in work:
            raise self.unsupported(kind)
        return self._pooled(work[kind])


class ToThreadPerTransaction(_PooledSqlite):
    """One `await asyncio.to_thread(unit_of_work)` per operation."""

    key = "to_thread-tx"
    label = "to_thread per transaction"
    kinds = frozenset({Kind.TRANSFER, Kind.POINT_READ, Kind.DASHBOARD, Kind.SELECT_ONE})

    def operation(self, kind: Kind) -> AsyncOperation:
        blocking = {
            Kind.TRANSFER: sqlite_work.transfer,
            Kind.POINT_READ: sqlite_work.point_read,
            Kind.DASHBOARD: sqlite_work.dashboard,
            Kind.SELECT_ONE: sqlite_work.select_one,
        }
        if kind not in blocking:
            raise self.unsupported(kind)
        unit = blocking[kind]

        async def work(connection: Connection, op: Op, meter: Meter) -> int:
            return await asyncio.to_thread(unit, connection, op, meter)

        return self._pooled(work)


async def _transfer(connection: Connection, op: Op, meter: Meter) -> int:
    await asyncio.to_thread(connection.execute, "BEGIN IMMEDIATE")
    meter.statements += 1
    try:
        for statement, params in SQL.legs(op):
            cursor = await asyncio.to_thread(connection.execute, statement, params)
            meter.statements += 1
            if cursor.rowcount != 1:
                await asyncio.to_thread(connection.rollback)
                return 0
        await asyncio.to_thread(connection.execute, SQL.record, SQL.record_params(op))
        meter.statements += 1
        await asyncio.to_thread(connection.commit)
        meter.commits += 1
        return 1
    except BaseException:
        await asyncio.to_thread(connection.rollback)
        raise


async def _point_read(connection: Connection, op: Op, meter: Meter) -> int:
    cursor = await asyncio.to_thread(connection.execute, SQL.point, (op.account,))
    row = await asyncio.to_thread(cursor.fetchone)
    meter.statements += 1
    if row is None:
        raise LookupError(f"account {op.account} does not exist")
    return int(row[0])


async def _dashboard(connection: Connection, op: Op, meter: Meter) -> int:
    await asyncio.to_thread(connection.execute, "BEGIN DEFERRED")
    try:
        cursor = await asyncio.to_thread(connection.execute, SQL.account, (op.account,))
        account = await asyncio.to_thread(cursor.fetchone)
        cursor = await asyncio.to_thread(
            connection.execute, SQL.history, SQL.history_params(op.account)
        )
        rows = await asyncio.to_thread(cursor.fetchall)
        meter.statements += 3
        await asyncio.to_thread(connection.commit)
        meter.commits += 1
    except BaseException:
        await asyncio.to_thread(connection.rollback)
        raise
    if account is None:
        raise LookupError(f"account {op.account} does not exist")
    return history_checksum([int(row[0]) for row in rows])


async def _select_one(connection: Connection, op: Op, meter: Meter) -> int:
    await asyncio.to_thread(connection.execute, SELECT_ONE)
    meter.statements += 1
    return 1
