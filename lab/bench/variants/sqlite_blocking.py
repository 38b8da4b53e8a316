"""Reference: the standard library's blocking sqlite3, no event loop involved."""

from __future__ import annotations

from functools import partial

from lab.bench.ops import Kind, Meter, Op
from lab.bench.pools import BlockingPool
from lab.bench.variants import sqlite_work
from lab.bench.variants.base import (
    BlockingOperation,
    BlockingVariant,
    retry_blocking,
    sqlite_transient,
)

_WORK = {
    Kind.TRANSFER: sqlite_work.transfer,
    Kind.POINT_READ: sqlite_work.point_read,
    Kind.DASHBOARD: sqlite_work.dashboard,
    Kind.SELECT_ONE: sqlite_work.select_one,
}


class SqliteBlocking(BlockingVariant):
    """sqlite3 called directly; with several clients, threads sharing `pool` connections."""

    key = "sqlite3"
    label = "sqlite3 (blocking)"
    kinds = frozenset(_WORK)

    async def open(self) -> None:
        self._pool = BlockingPool(
            [
                sqlite_work.connect(self.target.sqlite_path, any_thread=True)
                for _ in range(self.pool)
            ]
        )

    async def close(self) -> None:
        for connection in self._pool.connections:
            connection.close()

    def operation(self, kind: Kind) -> BlockingOperation:
        if kind not in _WORK:
            raise self.unsupported(kind)
        work = _WORK[kind]

        def operation(op: Op, meter: Meter) -> int:
            with self._pool.connection() as connection:
                return retry_blocking(partial(work, connection, op, meter), sqlite_transient, meter)

        return operation
