"""An aiosqlite adapter that crosses to the connection's thread once per statement.

aiosqlite runs every call on the connection's own thread, and each crossing costs far
more than the SQLite work of a small statement (measured by `bench`: a thread hop is
around a tenth of a millisecond, a primary-key UPDATE a few microseconds). SQLAlchemy's
stock adapter makes four crossings per statement: create a cursor, execute, fetch the
rows, close the cursor. This one runs all four in a single function on the connection's
thread, so a transfer costs one crossing per statement plus one for COMMIT.

It builds on SQLAlchemy 2.1's asyncio adapter classes (see the version pin in
pyproject.toml) and on aiosqlite's queue of calls, as SQLAlchemy's own dialect does for
its isolation-level setter. `DB_SQLITE_ONE_HOP=false` turns it off.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from functools import partial
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)

_Result = tuple[Any, list[Any], int, int | None, bool]


def _run_statement(
    connection: sqlite3.Connection, operation: str, parameters: Any, many: bool
) -> _Result:
    # Runs on aiosqlite's thread: everything the caller will ask of the cursor, at once.
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid, connection.in_transaction
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose execute() is a single call on the connection's thread."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # No aiosqlite cursor (creating one is a crossing of its own).
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._rows: deque[Any] = deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        self._rows.clear()

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._run(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:
        await self._run(operation, seq_of_parameters, many=True)

    async def _run(self, operation: Any, parameters: Any, *, many: bool) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        adapter: OneHopConnection = self._adapt_connection  # type: ignore[assignment]
        async with adapter._execute_mutex:
            # Until the statement reports back, assume it may have opened a transaction.
            adapter.in_transaction = True
            call = partial(_run_statement, connection._conn, operation, parameters, many)
            result: _Result = await connection._execute(call)  # type: ignore[no-untyped-call]
        self._description, rows, self._rowcount, self._lastrowid, adapter.in_transaction = result
        self._rows = deque(rows)


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    """The stock adapted connection, handing out one-hop cursors.

    It also knows whether a transaction is open (every statement reports SQLite's own
    flag back), so the pool's rollback-on-return after a COMMIT, which has nothing to
    undo, costs no crossing. When in doubt it assumes a transaction is open.
    """

    __slots__ = ("in_transaction",)
    _cursor_cls = OneHopCursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.in_transaction = True

    def commit(self) -> None:
        super().commit()
        self.in_transaction = False

    def rollback(self) -> None:
        if self.in_transaction:
            super().rollback()
            self.in_transaction = False


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI shim to pass as `create_async_engine(..., module=...)`."""

    def connect(self, *args: Any, **kwargs: Any) -> OneHopConnection:
        stock = super().connect(*args, **kwargs)
        return OneHopConnection(self, stock._connection)


def one_hop_dbapi() -> OneHopDBAPI:
    """A fresh shim over the installed aiosqlite and sqlite3 modules."""
    return OneHopDBAPI(aiosqlite, sqlite3)
