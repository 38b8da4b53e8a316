"""An aiosqlite adapter that crosses to the connection's thread once per statement.

aiosqlite runs every call on the connection's own thread, and each crossing costs far
more than the SQLite work of a small statement (measured by `bench`: a thread hop is
around a tenth of a millisecond, a primary-key UPDATE a few microseconds). SQLAlchemy's
stock adapter makes four crossings per statement: create a cursor, execute, fetch the
rows, close the cursor. This one runs all four in a single function on the connection's
thread, and holds a transaction's BEGIN back until its first statement, sent in the same
crossing, so a transaction costs one crossing per statement plus one for COMMIT. A
statement that asks for it (`DEFERRED`, a comment in its SQL) and returns nothing is held
back too, and sent in the crossing of the next statement or of COMMIT. A streamed
statement (`stream_results`, `yield_per`, `AsyncConnection.stream()`, `AsyncSession.stream()`)
gets a server-side cursor that joins the same protocol: it sends what was held back in
the crossing that opens it, then crosses once per batch of rows it fetches.

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
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Final, NoReturn, TypeVar

import aiosqlite
import sqlalchemy
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    AsyncAdapt_aiosqlite_ss_cursor,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

_Result = tuple[Any, list[Any], int, int | None]
_Opened = tuple[Any, int, int | None, list[Any], sqlite3.Cursor | None]

# Rows a streamed statement fetches in the crossing that opens it: SQLAlchemy asks for
# one row at once, then for growing batches, and a small first batch answers the first
# asks without a crossing each. Small: streaming is for results too big to hold.
STREAM_FIRST_BATCH: Final = 64
_Deferred = list[tuple[str, Any]]
T = TypeVar("T")

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


def _send_held(cursor: sqlite3.Cursor, begin: str | None, deferred: _Deferred) -> None:
    if begin is not None:
        cursor.execute(begin)
    for held, held_parameters in deferred:
        cursor.execute(held, held_parameters)


def _execute(cursor: sqlite3.Cursor, operation: str, parameters: Any, many: bool) -> None:
    if many:
        cursor.executemany(operation, parameters)
    elif parameters is None:
        cursor.execute(operation)
    else:
        cursor.execute(operation, parameters)


def _run_statement(
    operation: str,
    parameters: Any,
    many: bool,
    connection: sqlite3.Connection,
    begin: str | None,
    deferred: _Deferred,
) -> _Result:
    # Runs on aiosqlite's thread: everything the caller will ask of the cursor, at once.
    cursor = connection.cursor()
    try:
        _send_held(cursor, begin, deferred)
        _execute(cursor, operation, parameters, many)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _open_statement(
    operation: str,
    parameters: Any,
    many: bool,
    connection: sqlite3.Connection,
    begin: str | None,
    deferred: _Deferred,
) -> _Opened:
    # On aiosqlite's thread: what was held back, then the statement, whose rows stay in
    # SQLite until fetched (a server-side cursor). The cursor is used on this thread only.
    cursor = connection.cursor()
    try:
        _send_held(cursor, begin, deferred)
        _execute(cursor, operation, parameters, many)
        description = cursor.description
        first = cursor.fetchmany(STREAM_FIRST_BATCH) if description else []
    except BaseException:
        cursor.close()
        raise
    if len(first) < STREAM_FIRST_BATCH:  # every row is here: nothing left to stream
        cursor.close()
        return description, cursor.rowcount, cursor.lastrowid, first, None
    return description, cursor.rowcount, cursor.lastrowid, first, cursor


def _reporting_transaction(
    statement: Callable[[sqlite3.Connection, str | None, _Deferred], T],
    connection: sqlite3.Connection,
    begin: str | None,
    deferred: _Deferred,
) -> tuple[T, bool]:
    # On aiosqlite's thread: the statement's result, and whether a transaction is open.
    return statement(connection, begin, deferred), connection.in_transaction


def _commit_after(connection: sqlite3.Connection, begin: str | None, deferred: _Deferred) -> None:
    # On aiosqlite's thread: the statements held back, then COMMIT, in one crossing. If one
    # fails, the transaction stays open and the caller's rollback ends it.
    cursor = connection.cursor()
    try:
        _send_held(cursor, begin, deferred)
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
        adapter: OneHopConnection = self._adapt_connection  # type: ignore[assignment]
        self._description, self._rowcount, self._lastrowid = None, -1, None
        self._rows = deque()
        if adapter.hold_back(operation, parameters, many=many):
            return
        result = await adapter.send(partial(_run_statement, operation, parameters, many))
        self._description, rows, self._rowcount, self._lastrowid = result
        self._rows = deque(rows)


class OneHopServerSideCursor(AsyncAdapt_aiosqlite_ss_cursor):
    """A streaming cursor on the one-hop protocol: opening it sends the held-back BEGIN and
    DEFERRED statements with the statement itself, and it tells the connection whether a
    transaction is open; its rows stay in SQLite and cross a batch per fetch."""

    __slots__ = ("_arraysize", "_buffer", "_description", "_lastrowid", "_open", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # Not the base initialiser: it creates an aiosqlite cursor, a crossing of its own.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = _NO_DRIVER_CURSOR  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._open: sqlite3.Cursor | None = None
        self._buffer: deque[Any] = deque()
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

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None

    def nextset(self) -> None:
        self.close()

    async def _async_soft_close(self) -> None:
        # The rows are still to be fetched: nothing to close early (as the stock one).
        return None

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._run(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:
        await self._run(operation, seq_of_parameters, many=True)

    async def _run(self, operation: Any, parameters: Any, *, many: bool) -> None:
        adapter: OneHopConnection = self._adapt_connection  # type: ignore[assignment]
        await self._close_open()
        self._description, self._rowcount, self._lastrowid = None, -1, None
        if adapter.hold_back(operation, parameters, many=many):
            return
        opened = await adapter.send(partial(_open_statement, operation, parameters, many))
        self._description, self._rowcount, self._lastrowid, first, self._open = opened
        self._buffer = deque(first)

    def _fetch(self, size: int | None) -> list[Any]:
        wanted = len(self._buffer) if size is None else size
        rows = [self._buffer.popleft() for _ in range(min(wanted, len(self._buffer)))]
        if self._open is None or (size is not None and len(rows) == size):
            return rows
        cursor = self._open
        call = cursor.fetchall if size is None else partial(cursor.fetchmany, size - len(rows))
        adapter: OneHopConnection = self._adapt_connection  # type: ignore[assignment]
        try:
            more: list[Any] = await_(adapter.on_thread(call))
        except Exception as error:
            adapter._handle_exception(error)
        return rows + more

    def fetchone(self) -> Any:
        rows = self._fetch(1)
        return rows[0] if rows else None

    def fetchmany(self, size: int | None = None) -> Any:
        return self._fetch(self._arraysize if size is None else size)

    def fetchall(self) -> Any:
        return self._fetch(None)

    def __iter__(self) -> Any:
        while rows := self._fetch(max(self._arraysize, 100)):
            yield from rows

    async def _close_open(self) -> None:
        self._buffer.clear()
        cursor, self._open = self._open, None
        if cursor is not None:
            adapter: OneHopConnection = self._adapt_connection  # type: ignore[assignment]
            await adapter.on_thread(cursor.close)

    def close(self) -> None:
        self._buffer.clear()
        if self._open is not None:
            await_(self._close_open())


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    """The stock adapted connection, handing out one-hop cursors.

    It also knows whether a transaction is open (every statement reports SQLite's own
    flag back), so the pool's rollback-on-return after a COMMIT, which has nothing to
    undo, costs no crossing. When in doubt it assumes a transaction is open. A BEGIN not
    yet sent (`pending_begin`) opened nothing: ending its transaction costs no crossing.
    """

    __slots__ = ("deferred", "in_transaction", "pending_begin", "transaction_known_open")
    _cursor_cls = OneHopCursor  # type: ignore[assignment]
    _ss_cursor_cls = OneHopServerSideCursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.in_transaction = True
        self.pending_begin: str | None = None
        # A statement is held back only inside a transaction, which COMMIT or ROLLBACK
        # ends: outside one (autocommit) nothing would send it.
        self.deferred: _Deferred = []
        self.transaction_known_open = False

    def hold_back(self, operation: str, parameters: Any, *, many: bool) -> bool:
        """Keep a BEGIN, or a DEFERRED statement inside a transaction, for the next
        crossing; True if it was kept. A BEGIN inside a transaction fails here, at once,
        as SQLite would fail it."""
        if not many and not parameters and _BEGIN.fullmatch(operation):
            if self.pending_begin is not None or self.transaction_known_open:
                # Held back, it would replace the first BEGIN (a BEGIN IMMEDIATE silently
                # downgraded) or fail one statement late.
                raise sqlite3.OperationalError("cannot start a transaction within a transaction")
            if self.in_transaction:
                # In doubt (a statement failed before SQLite could say): let SQLite judge.
                return False
            # A BEGIN that fails (the write lock stayed busy) then fails the statement it
            # crosses with, as it would have failed the transaction had it been sent alone.
            self.pending_begin = operation
            self.in_transaction = self.transaction_known_open = True
            return True
        if not many and self.transaction_known_open and DEFERRED in operation:
            self.deferred.append((operation, parameters))
            self.in_transaction = True
            return True
        return False

    async def send(self, statement: Callable[[sqlite3.Connection, str | None, _Deferred], T]) -> T:
        """Run `statement(connection, begin, deferred)` on the connection's thread, given
        what was held back, in one crossing; then trust SQLite's own transaction flag."""
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        async with self._execute_mutex:
            # Until the statement reports back, assume it may have opened a transaction.
            self.in_transaction = True
            begin, self.pending_begin = self.pending_begin, None
            deferred, self.deferred = self.deferred, []
            call = partial(_reporting_transaction, statement, connection._conn, begin, deferred)
            result, self.in_transaction = await self.on_thread(call)
            self.transaction_known_open = self.in_transaction
        return result

    async def on_thread(self, call: Callable[[], T]) -> T:
        """`call()` on the connection's thread, in order with every other call."""
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        result: T = await connection._execute(call)  # type: ignore[no-untyped-call]
        return result

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
        elif self.pending_begin is None and self.in_transaction:
            # SQLite says no transaction is open (a statement run in autocommit): COMMIT
            # would do nothing, so it costs no crossing.
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
