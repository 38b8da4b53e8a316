"""An aiosqlite adapter that crosses to the connection's thread once per statement.

aiosqlite runs every call on the connection's own thread, and each crossing costs far
more than the SQLite work of a small statement (measured by `bench`: a thread hop is
around a tenth of a millisecond, a primary-key UPDATE a few microseconds). SQLAlchemy's
stock adapter makes four crossings per statement: create a cursor, execute, fetch the
rows, close the cursor. This one runs all four in a single function on the connection's
thread, and holds a transaction's BEGIN back until its first statement, sent in the same
crossing, so a transaction costs one crossing per statement plus one for COMMIT. A
statement that asks for it (`DEFERRED`, a comment in its SQL) and returns nothing is held
back too, and sent in the crossing of the next statement or of COMMIT.

It builds on private parts of SQLAlchemy 2.1's asyncio adapter classes and of aiosqlite's
queue of calls (as SQLAlchemy's own dialect does for its isolation-level setter), so it is
used only with the releases it was tested with (`TESTED_VERSIONS`, the pins in
pyproject.toml): with any other, `checked_dbapi()` warns and the engine falls back to the
stock adapter. `DB_SQLITE_ONE_HOP=false` turns it off.
"""

from __future__ import annotations

import re
import sqlite3
import warnings
from collections import deque
from collections.abc import Mapping
from functools import partial
from typing import Any, Final, NoReturn

import aiosqlite
import sqlalchemy
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

_Result = tuple[Any, list[Any], int, int | None, bool]
_Deferred = list[tuple[str, Any]]

DEFERRED: Final = "/* ledger:deferred */"
"""Marks a statement whose caller needs neither rows nor a row count from it (an INSERT
without RETURNING): the one-hop adapter sends it with the next statement of its
transaction, or with COMMIT, instead of crossing for it alone. Its errors surface there.
Put it in the SQL, e.g. `insert(table).prefix_with(DEFERRED)`; to any other driver it is
a comment."""

# (lowest, first untested) major.minor of each library; keep in step with pyproject.toml.
TESTED_VERSIONS: Final[Mapping[str, tuple[tuple[int, int], tuple[int, int]]]] = {
    "sqlalchemy": ((2, 1), (2, 2)),
    "aiosqlite": ((0, 22), (0, 23)),
}


class OneHopUnavailable(RuntimeWarning):
    """The installed SQLAlchemy or aiosqlite is outside the range the adapter was tested with."""


def installed_versions() -> dict[str, str]:
    """The versions of the libraries the adapter builds on, as they report themselves."""
    return {"sqlalchemy": sqlalchemy.__version__, "aiosqlite": aiosqlite.__version__}


def refusal(versions: Mapping[str, str]) -> str | None:
    """Why the adapter must not run with these library versions, or None if it may."""
    for name, (lowest, first_untested) in TESTED_VERSIONS.items():
        version = versions.get(name, "")
        found = re.match(r"(\d+)\.(\d+)", version)
        if found is None or not lowest <= (int(found[1]), int(found[2])) < first_untested:
            tested = f">={lowest[0]}.{lowest[1]},<{first_untested[0]}.{first_untested[1]}"
            return f"{name} {version or '(unknown version)'} is outside the tested range {tested}"
    return None


def checked_dbapi() -> OneHopDBAPI | None:
    """The one-hop shim, or None (with an OneHopUnavailable warning) when the installed
    libraries are outside the tested range and the stock adapter must be used."""
    reason = refusal(installed_versions())
    if reason is None:
        return one_hop_dbapi()
    warnings.warn(
        f"the one-hop SQLite adapter is off: {reason}; using SQLAlchemy's stock aiosqlite "
        "adapter (set DB_SQLITE_ONE_HOP=false to choose it explicitly)",
        OneHopUnavailable,
        stacklevel=3,
    )
    return None


class _NoDriverCursor:
    """Stands in for the aiosqlite cursor a one-hop cursor never creates, so that a base
    class method this module does not override fails with a DBAPI error naming itself
    instead of an AttributeError on an unset slot."""

    __slots__ = ()

    def __getattr__(self, name: str) -> NoReturn:
        raise sqlite3.NotSupportedError(f"the one-hop SQLite cursor does not support {name}")


_NO_DRIVER_CURSOR: Final = _NoDriverCursor()


# What the engine's "begin" listener sends (db/sqlite_engine.py): BEGIN and its locking mode.
_BEGIN: Final = re.compile(r"BEGIN(?: (?:DEFERRED|IMMEDIATE|EXCLUSIVE))?", re.IGNORECASE)


def _run_statement(
    connection: sqlite3.Connection,
    operation: str,
    parameters: Any,
    many: bool,
    begin: str | None,
    deferred: _Deferred,
) -> _Result:
    # Runs on aiosqlite's thread: everything the caller will ask of the cursor, at once.
    cursor = connection.cursor()
    try:
        if begin is not None:
            cursor.execute(begin)
        for held, held_parameters in deferred:
            cursor.execute(held, held_parameters)
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


def _commit_after(connection: sqlite3.Connection, begin: str | None, deferred: _Deferred) -> None:
    # On aiosqlite's thread: the statements held back, then COMMIT, in one crossing. If one
    # fails, the transaction stays open and the caller's rollback ends it.
    cursor = connection.cursor()
    try:
        if begin is not None:
            cursor.execute(begin)
        for held, held_parameters in deferred:
            cursor.execute(held, held_parameters)
    finally:
        cursor.close()
    connection.commit()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose execute() is a single call on the connection's thread."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # Not the base initialiser: it creates an aiosqlite cursor, a crossing of its own.
        # Every slot it would set is set here, the driver cursor to a stand-in.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = _NO_DRIVER_CURSOR  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
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

    def nextset(self) -> None:
        # sqlite3 returns one result set per statement: discard its rest, report no more.
        self._rows.clear()

    def setinputsizes(self, *inputsizes: Any) -> None:
        # As sqlite3's own cursor: accepted and ignored.
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
        if not many and not parameters and _BEGIN.fullmatch(operation):
            # Held back: it crosses with the transaction's first statement. A BEGIN that
            # fails (the write lock stayed busy) then fails that statement, as it would
            # have failed the transaction had it been sent alone.
            adapter.pending_begin = operation
            adapter.in_transaction = adapter.transaction_known_open = True
            self._description, self._rowcount, self._lastrowid = None, -1, None
            self._rows = deque()
            return
        if not many and adapter.transaction_known_open and DEFERRED in operation:
            adapter.deferred.append((operation, parameters))
            adapter.in_transaction = True
            self._description, self._rowcount, self._lastrowid = None, -1, None
            self._rows = deque()
            return
        async with adapter._execute_mutex:
            # Until the statement reports back, assume it may have opened a transaction.
            adapter.in_transaction = True
            begin, adapter.pending_begin = adapter.pending_begin, None
            deferred, adapter.deferred = adapter.deferred, []
            call = partial(
                _run_statement, connection._conn, operation, parameters, many, begin, deferred
            )
            result: _Result = await connection._execute(call)  # type: ignore[no-untyped-call]
        self._description, rows, self._rowcount, self._lastrowid, adapter.in_transaction = result
        adapter.transaction_known_open = adapter.in_transaction
        self._rows = deque(rows)


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    """The stock adapted connection, handing out one-hop cursors.

    It also knows whether a transaction is open (every statement reports SQLite's own
    flag back), so the pool's rollback-on-return after a COMMIT, which has nothing to
    undo, costs no crossing. When in doubt it assumes a transaction is open. A BEGIN not
    yet sent (`pending_begin`) opened nothing: ending its transaction costs no crossing.
    """

    __slots__ = ("deferred", "in_transaction", "pending_begin", "transaction_known_open")
    _cursor_cls = OneHopCursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.in_transaction = True
        self.pending_begin: str | None = None
        # A statement is held back only inside a transaction, which COMMIT or ROLLBACK
        # ends: outside one (autocommit) nothing would send it.
        self.deferred: _Deferred = []
        self.transaction_known_open = False

    def commit(self) -> None:
        if self.deferred:
            begin, self.pending_begin = self.pending_begin, None
            deferred, self.deferred = self.deferred, []
            connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
            call = partial(_commit_after, connection._conn, begin, deferred)
            try:
                await_(connection._execute(call))  # type: ignore[no-untyped-call]
            except Exception as error:
                self._handle_exception(error)
        elif self.pending_begin is None:
            super().commit()
        self.pending_begin = None
        self.in_transaction = self.transaction_known_open = False

    def rollback(self) -> None:
        self.deferred = []
        self.transaction_known_open = False
        if self.pending_begin is not None:
            self.pending_begin = None
            self.in_transaction = False
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
