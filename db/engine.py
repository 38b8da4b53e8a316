"""Engine construction: pool choice and per-connection setup for SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import inspect
import os
import sqlite3
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, QueuePool

from db.cancellation import interrupt_sqlite_on_cancel
from db.disconnects import watch_disconnects
from db.replicas import attach_replica
from db.settings import DatabaseSettings, SettingsError
from db.sqlite_one_hop import checked_dbapi

# Execution option read by the SQLite "begin" listener. Every transaction starts with
# BEGIN IMMEDIATE unless it opts out with DEFERRED: a transaction that reads and then
# writes must hold the write lock from its first statement, or SQLite fails it with
# "database is locked" the moment it tries to upgrade (busy_timeout does not help there,
# because waiting could deadlock).
SQLITE_BEGIN_OPTION: Final = "ledger_sqlite_begin"

_BEGIN_MODES: Final = frozenset({"IMMEDIATE", "DEFERRED", "EXCLUSIVE"})

# How the server lists our connections (pg_stat_activity.application_name).
APPLICATION_NAME: Final = "ledger"

# How the per-transaction limits statement behind a transaction pooler starts.
TRANSACTION_LIMITS_PREFIX: Final = "SELECT set_config("


def starts_transaction(statement: str) -> bool:
    """True for what the engine sends to open a transaction rather than to do its work:
    SQLite's BEGIN, and the limits set at each BEGIN behind a transaction pooler."""
    text = statement.lstrip()
    return text.upper().startswith("BEGIN") or text.startswith(TRANSACTION_LIMITS_PREFIX)


# URL query parameters that SQLAlchemy's asyncpg dialect consumes itself; every other one
# is passed on to asyncpg.connect() as a keyword argument.
_ASYNCPG_DIALECT_QUERY_KEYS: Final = frozenset(
    {"prepared_statement_cache_size", "prepared_statement_name_func"}
)


# The settings each engine was built from, so that errors can name the limits that applied
# without reading the pool's private attributes. Weak: an engine's entry goes with it.
_ENGINE_SETTINGS: Final[weakref.WeakKeyDictionary[Engine, DatabaseSettings]] = (
    weakref.WeakKeyDictionary()
)


def engine_settings(engine: AsyncEngine) -> DatabaseSettings | None:
    """The settings `create_engine` built `engine` from (None for an engine made elsewhere)."""
    return _ENGINE_SETTINGS.get(engine.sync_engine)


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    """Build the AsyncEngine for `settings`, with the pool class chosen explicitly.

    Both backends get AsyncAdaptedQueuePool: a fixed set of reusable connections, with
    `pool_timeout` bounding how long a task waits for one. For SQLite we refuse ':memory:'
    because the dialect would silently switch to a StaticPool, one shared connection, so
    that concurrent sessions share one transaction and concurrency tests test nothing.
    """
    url = settings.sqlalchemy_url
    common: dict[str, Any] = {
        "poolclass": AsyncAdaptedQueuePool,
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_timeout": settings.pool_timeout,
        "pool_recycle": settings.pool_recycle,
        "pool_pre_ping": settings.pool_pre_ping,
        # Hand out the most recently returned connection: a hot one, whose prepared
        # statements (asyncpg) and page cache (SQLite) are warm, and let the rest idle.
        # FIFO would rotate every request through every pooled connection.
        "pool_use_lifo": True,
        "echo": settings.echo,
    }
    if settings.backend == "sqlite":
        database = url.database or ""
        if (
            database in ("", ":memory:")
            or ":memory:" in database
            or url.query.get("mode") == "memory"
        ):
            raise SettingsError(
                "DATABASE_URL points at an in-memory SQLite database; it cannot give concurrent "
                "sessions their own connections. Use a file, e.g. sqlite+aiosqlite:///ledger.db"
            )
        if url.query.get("uri") != "true":
            _check_sqlite_path(Path(database))
        if settings.sqlite_one_hop and (module := checked_dbapi()) is not None:
            common["module"] = module
        engine = create_async_engine(url, connect_args={"factory": RollbackOnClose}, **common)
        _install_sqlite_setup(engine, settings)
        interrupt_sqlite_on_cancel(engine)
        _ENGINE_SETTINGS[engine.sync_engine] = settings
        return engine

    _check_asyncpg_query(url)
    if settings.pooled_by_transaction:
        connect_args = _transaction_pooler_connect_args(settings)
    else:
        connect_args = {
            # Server-side limits travel in the startup packet: no extra round trip per
            # checkout.
            "server_settings": {
                "statement_timeout": str(settings.statement_timeout_ms),
                "lock_timeout": str(settings.lock_timeout_ms),
                "application_name": APPLICATION_NAME,
            },
            "timeout": settings.pool_timeout,
        }
    if "ssl" not in url.query and not os.environ.get("PGSSLMODE"):
        # asyncpg's default, sslmode=prefer, starts every connection and every cancel request
        # with an SSLRequest; a task cancelled right after that socket connects leaves the
        # handshake's future holding ConnectionError('unexpected connection_lost() call'),
        # never retrieved, which asyncio logs as an error. "prefer" does not verify the
        # server either, so TLS is asked for explicitly: ?ssl=require (or PGSSLMODE).
        connect_args["ssl"] = False
    engine = create_async_engine(url, connect_args=connect_args, **common)
    watch_disconnects(engine)
    if settings.read_url is not None:
        attach_replica(
            engine, create_engine(replace(settings, url=settings.read_url, read_url=None))
        )
    if settings.pooled_by_transaction:
        _limit_each_transaction(engine, settings)
    _ENGINE_SETTINGS[engine.sync_engine] = settings
    return engine


def _transaction_pooler_connect_args(settings: DatabaseSettings) -> dict[str, Any]:
    """asyncpg behind a transaction pooler (PgBouncer pool_mode=transaction).

    Between two transactions the pooler may hand our client connection a different
    server connection, so nothing may live on the server session from one transaction to
    the next. Prepared statements do: asyncpg names them __asyncpg_stmt_1__, _2__, ... per
    client connection, so one client finds another's name taken, or its own missing
    ("prepared statement ... does not exist"). Hence unique names and no statement
    caches (asyncpg's and the dialect's); each statement is prepared inside its own
    transaction, on the server connection that runs it. The limits cannot ride in the
    startup packet either (PgBouncer refuses unknown startup parameters), so
    `_limit_each_transaction` sets them per transaction.
    """
    return {
        "server_settings": {"application_name": APPLICATION_NAME},
        "timeout": settings.pool_timeout,
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "prepared_statement_name_func": _unique_statement_name,
    }


def _unique_statement_name() -> str:
    return f"__ledger_{uuid.uuid4().hex}__"


def _limit_each_transaction(engine: AsyncEngine, settings: DatabaseSettings) -> None:
    # set_config(..., true) is SET LOCAL: it ends with the transaction, so the server
    # connection goes back to the pooler as it came. One statement for both limits: one
    # round trip per transaction, the price of the pooler (a role- or database-level
    # ALTER ... SET on the server would avoid it, but is not ours to make).
    limits = (
        f"{TRANSACTION_LIMITS_PREFIX}'statement_timeout', '{int(settings.statement_timeout_ms)}', "
        f"true), set_config('lock_timeout', '{int(settings.lock_timeout_ms)}', true)"
    )

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql(limits)


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


def _check_asyncpg_query(url: URL) -> None:
    # asyncpg.connect() answers an unknown keyword (e.g. libpq's ?sslmode=) with a bare
    # TypeError at the first connection; refuse it while reading the settings instead.
    import asyncpg  # the driver is optional; only a PostgreSQL engine needs it

    accepted = set(inspect.signature(asyncpg.connect).parameters) | _ASYNCPG_DIALECT_QUERY_KEYS
    unknown = sorted(set(url.query) - accepted)
    if unknown:
        raise SettingsError(
            f"DATABASE_URL has query parameters asyncpg does not take: {', '.join(unknown)} "
            "(for TLS use ?ssl=require)"
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
        if mode not in _BEGIN_MODES:
            raise ValueError(f"{SQLITE_BEGIN_OPTION} must be one of {sorted(_BEGIN_MODES)}")
        connection.exec_driver_sql(f"BEGIN {mode}")


def read_only_options(dialect_name: str) -> Mapping[str, Any]:
    """Execution options for a read-only transaction that sees one consistent snapshot.

    SQLite: a deferred BEGIN; in WAL mode readers never queue behind the writer and see
    the database as of their first read. PostgreSQL: READ ONLY at REPEATABLE READ, so a
    report made of several queries is consistent (READ COMMITTED would give each query
    its own snapshot); asyncpg sends both in its BEGIN, at no extra round trip.
    """
    if dialect_name == "sqlite":
        return {SQLITE_BEGIN_OPTION: "DEFERRED"}
    return {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}


@dataclass(frozen=True, slots=True)
class PoolStatus:
    """A snapshot of the connection pool."""

    size: int
    checked_out: int
    checked_in: int
    overflow: int

    def __str__(self) -> str:
        return (
            f"pool size={self.size} checked_out={self.checked_out} "
            f"idle={self.checked_in} overflow={self.overflow}"
        )


def pool_status(engine: AsyncEngine) -> PoolStatus:
    """How many connections the engine's pool holds, lends out and keeps idle right now."""
    pool = engine.pool
    if not isinstance(pool, QueuePool):
        raise TypeError(f"expected a queue pool, got {type(pool).__name__}")
    return PoolStatus(
        size=pool.size(),
        checked_out=pool.checkedout(),
        checked_in=pool.checkedin(),
        # QueuePool counts overflow from -size while idle; report only real overflow.
        overflow=max(pool.overflow(), 0),
    )
