"""The one translation from what the driver or the pool raised to a typed LedgerError.

Every caller that runs database work (services/transactions.py for the use cases,
services/schema.py at start-up, the CLI for `migrate`) sends failures through `translate`,
so a failure reads the same whichever way it arrived. It only runs once something has
failed: the success path costs nothing.
"""

from __future__ import annotations

import re
from sqlite3 import SQLITE_FULL
from typing import Any, Final

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine

from db import engine_settings, is_disconnect
from services.errors import (
    DatabaseBusy,
    DatabaseUnavailable,
    LedgerError,
    OperationTimeout,
    PoolExhausted,
    SchemaNotMigrated,
    StorageFull,
)

# PostgreSQL SQLSTATEs after which running the whole transaction again can succeed:
# serialization_failure, deadlock_detected, lock_not_available (lock_timeout).
_PG_TRANSIENT: Final = frozenset({"40001", "40P01", "55P03"})
_SQLITE_TRANSIENT: Final = ("database is locked", "database table is locked", "database is busy")
# query_canceled: on our connections, that is statement_timeout (DB_STATEMENT_TIMEOUT_MS).
_PG_STATEMENT_TIMEOUT: Final = "57014"
# undefined_table; SQLite says "no such table: name".
_PG_UNDEFINED_TABLE: Final = "42P01"
_SQLITE_NO_SUCH_TABLE: Final = re.compile(r"no such table: (\S+)")
_PG_TABLE_NAME: Final = re.compile(r'relation "([^"]+)" does not exist')

# No room to write: PostgreSQL's disk_full and out_of_memory (class 53, insufficient
# resources); SQLite's SQLITE_FULL ("database or disk is full").
_PG_STORAGE_FULL: Final = frozenset({"53100", "53200"})

MIGRATE_HINT: Final = "run `ledgerctl migrate` (or `await db.migrations.upgrade(engine)`)"


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is a busy/locked/serialization failure worth retrying."""
    if not isinstance(exc, DBAPIError):
        return False
    orig: Any = exc.orig
    if getattr(orig, "sqlstate", None) in _PG_TRANSIENT:
        return True
    message = str(orig).lower()
    return any(marker in message for marker in _SQLITE_TRANSIENT)


def translate(
    exc: BaseException,
    engine: AsyncEngine | None = None,
    *,
    attempts: int = 1,
    read_only: bool = False,
) -> LedgerError | None:
    """The LedgerError that `exc` means to a caller, or None when it means none of them.

    None is for what a caller cannot act on (a bug, a constraint the services should have
    checked, a refused login): re-raise it as it is. `engine` names the pool's settings in
    PoolExhausted; `attempts` is how often a transient failure was already retried;
    `read_only` whether the transaction was opened read-only (db.is_disconnect).
    A lost connection means DatabaseUnavailable only if COMMIT was not sent: the caller
    that sent it raises OutcomeUnknown instead (services/transactions.py).
    Pass an OSError only when it came from connecting: asyncpg raises a refused or timed-out
    connection unwrapped, and only the caller knows the error came from there.
    """
    if isinstance(exc, PoolTimeoutError):
        return pool_exhausted(engine)
    if isinstance(exc, OSError):
        return DatabaseUnavailable(f"cannot reach the database: {_unreachable(exc, engine)}")
    if is_disconnect(exc, read_only=read_only):
        orig = exc.orig if isinstance(exc, DBAPIError) else exc
        return DatabaseUnavailable(
            f"lost the database connection, or no server is the primary now ({orig}); "
            "nothing was committed"
        )
    if isinstance(exc, DBAPIError):
        return _driver_error(exc, attempts)
    return None


def _unreachable(exc: OSError, engine: AsyncEngine | None) -> str:
    if not isinstance(exc, TimeoutError):
        return str(exc) or type(exc).__name__
    # db/postgres_engine.py gives asyncpg DB_POOL_TIMEOUT as its connect timeout too.
    settings = engine_settings(engine) if engine is not None else None
    limit = f"={settings.pool_timeout:g}s" if settings is not None else ""
    return f"no answer within DB_POOL_TIMEOUT{limit}"


def _driver_error(exc: DBAPIError, attempts: int) -> LedgerError | None:
    orig: Any = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    message = str(orig)
    if sqlstate == _PG_STATEMENT_TIMEOUT:
        return OperationTimeout(
            "the database cancelled a statement that ran past DB_STATEMENT_TIMEOUT_MS"
        )
    if is_transient(exc):
        return DatabaseBusy(f"the database stayed busy through {attempts} attempts: {orig}")
    if sqlstate in _PG_STORAGE_FULL or getattr(orig, "sqlite_errorcode", None) == SQLITE_FULL:
        return StorageFull(
            f"the database has no room to write ({message}); nothing of this request was "
            "written: free space and try again"
        )
    missing = _SQLITE_NO_SUCH_TABLE.search(message)
    if missing is None and sqlstate == _PG_UNDEFINED_TABLE:
        missing = _PG_TABLE_NAME.search(message)
    if missing is not None:
        return SchemaNotMigrated(
            f"the database is not migrated (it has no table {missing.group(1)}); {MIGRATE_HINT}"
        )
    return None


def pool_exhausted(engine: AsyncEngine | None) -> PoolExhausted:
    """The error for a pool checkout that timed out, naming the settings that size the pool."""
    settings = engine_settings(engine) if engine is not None else None
    if settings is not None:
        size, overflow = settings.pool_size, settings.max_overflow
        limits = (
            f"all {size + overflow} connections (DB_POOL_SIZE={size} + DB_MAX_OVERFLOW="
            f"{overflow}) stayed in use for DB_POOL_TIMEOUT={settings.pool_timeout:g}s"
        )
    else:
        limits = "all DB_POOL_SIZE + DB_MAX_OVERFLOW connections stayed in use for DB_POOL_TIMEOUT"
    return PoolExhausted(
        f"connection pool exhausted: {limits}; lower the concurrency or raise these settings"
    )
