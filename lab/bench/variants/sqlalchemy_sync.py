"""Synchronous SQLAlchemy Core on sqlite3: SQLAlchemy's own cost, without any thread hop."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import Connection
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from db import SQLITE_BEGIN_OPTION
from lab.bench.ops import Kind, Meter, Op
from lab.bench.sql import history_checksum
from lab.bench.variants import core_statements as core
from lab.bench.variants.base import BlockingOperation, BlockingVariant, Refused, retry_blocking
from lab.bench.variants.sqlite_work import PRAGMAS
from services.transactions import is_transient

Work = Callable[[Op], int]


class SqlalchemySyncCore(BlockingVariant):
    """Core statements on a blocking engine set up like the project's async one."""

    key = "sqlalchemy-sync"
    label = "SQLAlchemy Core (sync)"
    kinds = frozenset({Kind.TRANSFER, Kind.POINT_READ, Kind.DASHBOARD, Kind.SELECT_ONE})

    async def open(self) -> None:
        self._engine = _sqlite_engine(self.target.sync_url(), self.pool)
        self._reader = self._engine.execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})
        connections = [self._engine.connect() for _ in range(self.pool)]
        for connection in connections:
            connection.close()

    async def close(self) -> None:
        self._engine.dispose()

    def statement_meter(self) -> AbstractContextManager[Meter]:
        return _count_statements(self._engine)

    def operation(self, kind: Kind) -> BlockingOperation:
        work: dict[Kind, Work] = {
            Kind.TRANSFER: self._transfer,
            Kind.POINT_READ: self._point_read,
            Kind.DASHBOARD: self._dashboard,
            Kind.SELECT_ONE: self._select_one,
        }
        if kind not in work:
            raise self.unsupported(kind)
        unit = work[kind]

        def operation(op: Op, meter: Meter) -> int:
            return retry_blocking(partial(unit, op), is_transient, meter)

        return operation

    def _transfer(self, op: Op) -> int:
        try:
            with self._engine.begin() as connection:
                for statement, params in core.legs(op):
                    if connection.execute(statement, params).rowcount != 1:
                        raise Refused
                connection.execute(core.RECORD, core.record_params(op))
        except Refused:
            return 0
        return 1

    def _point_read(self, op: Op) -> int:
        with self._reader.connect() as connection:
            return int(connection.execute(core.POINT, {"account_id": op.account}).scalar_one())

    def _dashboard(self, op: Op) -> int:
        with self._reader.connect() as connection:
            params = {"account_id": op.account}
            account = connection.execute(core.ACCOUNT, params).first()
            rows = connection.execute(core.HISTORY, params).all()
        if account is None:
            raise LookupError(f"account {op.account} does not exist")
        return history_checksum([int(row.id) for row in rows])

    def _select_one(self, op: Op) -> int:
        with self._reader.connect() as connection:
            return int(connection.execute(core.SELECT_ONE).scalar_one())


def _sqlite_engine(url: str, pool: int) -> Engine:
    engine = create_sync_engine(url, poolclass=QueuePool, pool_size=pool, max_overflow=0)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # As db/sqlite_engine.py does for the async engine: no legacy transaction control.
        dbapi_connection.isolation_level = None
        for pragma in PRAGMAS:
            dbapi_connection.execute(pragma)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = str(connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE"))
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


@contextmanager
def _count_statements(engine: Engine) -> Iterator[Meter]:
    """What db.EngineMonitor counts, for a synchronous engine used from several threads."""
    meter = Meter()
    lock = threading.Lock()

    def on_execute(*_: Any) -> None:
        with lock:
            meter.statements += 1

    def on_commit(*_: Any) -> None:
        with lock:
            meter.commits += 1

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", on_commit)
    try:
        yield meter
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "commit", on_commit)
