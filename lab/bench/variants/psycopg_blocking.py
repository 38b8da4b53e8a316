"""Reference on PostgreSQL: psycopg 3, blocking; several clients are threads."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Final

import psycopg
from psycopg.rows import TupleRow

from lab.bench.ops import Kind, Meter, Op
from lab.bench.pools import BlockingPool
from lab.bench.sql import SLOW_LOOKUP_SECONDS, Statements
from lab.bench.variants.base import (
    BlockingOperation,
    BlockingVariant,
    Refused,
    pg_transient,
    retry_blocking,
)

SQL: Final = Statements("format")

Work = Callable[[psycopg.Connection[TupleRow], Op, Meter], int]


class PsycopgBlocking(BlockingVariant):
    """psycopg with `pool` connections shared by the client threads."""

    key = "psycopg"
    label = "psycopg (blocking)"
    kinds = frozenset({Kind.TRANSFER, Kind.POINT_READ, Kind.SLOW_LOOKUP})

    async def open(self) -> None:
        self._pool = BlockingPool(
            [psycopg.connect(self.target.postgres_dsn, autocommit=True) for _ in range(self.pool)]
        )

    async def close(self) -> None:
        for connection in self._pool.connections:
            connection.close()

    def operation(self, kind: Kind) -> BlockingOperation:
        work: dict[Kind, Work] = {
            Kind.TRANSFER: _transfer,
            Kind.POINT_READ: _point_read,
            Kind.SLOW_LOOKUP: _slow_lookup,
        }
        if kind not in work:
            raise self.unsupported(kind)
        unit = work[kind]

        def operation(op: Op, meter: Meter) -> int:
            with self._pool.connection() as connection:
                return retry_blocking(partial(unit, connection, op, meter), pg_transient, meter)

        return operation


def _transfer(connection: psycopg.Connection[TupleRow], op: Op, meter: Meter) -> int:
    try:
        with connection.transaction():
            for statement, params in SQL.legs(op):
                cursor = connection.execute(statement, params)
                meter.statements += 1
                if cursor.rowcount != 1:
                    raise Refused
            connection.execute(SQL.record, SQL.record_params(op))
            meter.statements += 1
    except Refused:
        return 0
    meter.commits += 1
    return 1


def _point_read(connection: psycopg.Connection[TupleRow], op: Op, meter: Meter) -> int:
    row = connection.execute(SQL.point, (op.account,)).fetchone()
    meter.statements += 1
    if row is None:
        raise LookupError(f"account {op.account} does not exist")
    return int(row[0])


def _slow_lookup(connection: psycopg.Connection[TupleRow], op: Op, meter: Meter) -> int:
    connection.execute(SQL.sleep, (SLOW_LOOKUP_SECONDS,))
    row = connection.execute(SQL.point, (op.account,)).fetchone()
    meter.statements += 2
    if row is None:
        raise LookupError(f"account {op.account} does not exist")
    return int(row[0])
