"""The SQLite engine: a file (never in-memory), the one-hop adapter, and each connection's setup."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from db.cancellation import interrupt_sqlite_on_cancel
from db.settings import DatabaseSettings, SettingsError
from db.sqlite_one_hop import checked_dbapi

# Execution option read by the SQLite "begin" listener. Every transaction starts with
# BEGIN IMMEDIATE unless it opts out with DEFERRED: a transaction that reads and then
# writes must hold the write lock from its first statement, or SQLite fails it with
# "database is locked" the moment it tries to upgrade (busy_timeout does not help there,
# because waiting could deadlock).
SQLITE_BEGIN_OPTION: Final = "ledger_sqlite_begin"

_BEGIN_MODES: Final = frozenset({"IMMEDIATE", "DEFERRED", "EXCLUSIVE"})
# No BEGIN at all: each statement is its own transaction (a one-statement read, which
# then costs one crossing to the connection's thread instead of two).
NO_BEGIN: Final = "AUTOCOMMIT"


def create_sqlite_engine(settings: DatabaseSettings, pool: dict[str, Any]) -> AsyncEngine:
    """The engine for a SQLite file, with the pool arguments `pool`.

    ':memory:' is refused because the dialect would silently switch to a StaticPool, one
    shared connection, so that concurrent sessions share one transaction and concurrency
    tests test nothing.
    """
    url = settings.sqlalchemy_url
    database = url.database or ""
    if database in ("", ":memory:") or ":memory:" in database or url.query.get("mode") == "memory":
        raise SettingsError(
            "DATABASE_URL points at an in-memory SQLite database; it cannot give concurrent "
            "sessions their own connections. Use a file, e.g. sqlite+aiosqlite:///ledger.db"
        )
    if url.query.get("uri") != "true":
        _check_sqlite_path(Path(database))
    arguments = dict(pool)
    if settings.sqlite_one_hop and (module := checked_dbapi()) is not None:
        arguments["module"] = module
    engine = create_async_engine(url, connect_args={"factory": RollbackOnClose}, **arguments)
    _install_sqlite_setup(engine, settings)
    interrupt_sqlite_on_cancel(engine)
    return engine


class RollbackOnClose(sqlite3.Connection):
    """A sqlite3 connection that ends its transaction before it closes.

    Closing a connection that still has an unfinished statement (a SELECT whose rows were
    not all fetched because its task was cancelled) leaves a "zombie" that keeps the open
    transaction, and with it SQLite's write lock, for as long as that statement lives;
    the cancellation's traceback keeps it alive, so every writer waits out busy_timeout.
    A ROLLBACK first ends the transaction whatever statements remain. It runs on the
    connection's own thread, in order, whichever way the pool closes the connection.
    """

    def close(self) -> None:
        # A failed rollback must not prevent the close; closing also discards the work.
        with contextlib.suppress(sqlite3.Error):
            self.rollback()
        super().close()


def _check_sqlite_path(path: Path) -> None:
    # SQLite creates a missing file but not a missing directory. Failing here gives a
    # clear message, and avoids aiosqlite's failed-connect path, whose worker thread can
    # outlive a short-lived event loop and print a traceback as the process exits.
    if path.is_dir():
        raise SettingsError(f"DATABASE_URL points at {path}, a directory, not a database file")
    if not path.parent.is_dir():
        raise SettingsError(
            f"DATABASE_URL points at {path}, but the directory {path.parent} does not exist"
        )


def _install_sqlite_setup(engine: AsyncEngine, settings: DatabaseSettings) -> None:
    busy_timeout = int(settings.busy_timeout_ms)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take transaction control away from the sqlite3 driver: in its legacy mode it
        # emits no BEGIN before a SELECT, so an ORM read-modify-write reads outside the
        # transaction and silently loses concurrent updates.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_timeout}")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = str(connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE"))
        if mode == NO_BEGIN:
            return
        if mode not in _BEGIN_MODES:
            raise ValueError(f"{SQLITE_BEGIN_OPTION} must be one of {sorted(_BEGIN_MODES)}")
        connection.exec_driver_sql(f"BEGIN {mode}")
