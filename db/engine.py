"""Engine construction: the pool both backends share, then each backend's own setup
(db/sqlite_engine.py, db/postgres_engine.py); and what callers ask of an engine."""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool, QueuePool

from db.postgres_engine import (
    APPLICATION_NAME,
    TRANSACTION_LIMITS_PREFIX,
    create_postgres_engine,
)
from db.replicas import attach_replica
from db.settings import POOLER_TRANSACTION, DatabaseSettings
from db.sqlite_engine import NO_BEGIN, SQLITE_BEGIN_OPTION, RollbackOnClose, create_sqlite_engine

__all__ = [
    "APPLICATION_NAME",
    "SQLITE_BEGIN_OPTION",
    "TRANSACTION_LIMITS_PREFIX",
    "PoolStatus",
    "RollbackOnClose",
    "create_engine",
    "engine_settings",
    "one_statement_read_options",
    "pool_status",
    "read_only_options",
    "starts_transaction",
]


def starts_transaction(statement: str) -> bool:
    """True for what the engine sends to open a transaction rather than to do its work:
    SQLite's BEGIN, and the limits set at each BEGIN behind a transaction pooler."""
    text = statement.lstrip()
    return text.upper().startswith("BEGIN") or text.startswith(TRANSACTION_LIMITS_PREFIX)


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
    `pool_timeout` bounding how long a task waits for one.
    """
    pool: dict[str, Any] = {
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
        engine = create_sqlite_engine(settings, pool)
    else:
        engine = create_postgres_engine(settings, pool)
        if settings.read_url is not None:
            # Reads that may run on a standby go there (db/replicas.py).
            replica = create_engine(settings.replace(url=settings.read_url, read_url=None))
            attach_replica(engine, replica)
    _ENGINE_SETTINGS[engine.sync_engine] = settings
    return engine


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


def one_statement_read_options(engine: Engine) -> Mapping[str, Any]:
    """Execution options for a read of one statement on `engine`: no transaction around
    it, so no BEGIN and COMMIT round trips (one statement sees one snapshot by itself). A
    read of several statements needs `read_only_options`, or each would see its own.

    SQLite: no BEGIN (the driver is in autocommit mode, db/sqlite_engine.py). PostgreSQL:
    AUTOCOMMIT, which asyncpg applies without a round trip; but behind PgBouncer in
    transaction mode (DB_PG_POOLER) the read keeps its transaction, since outside one the
    pooler may hand the statement's prepare and its execution to different servers.
    """
    if engine.dialect.name == "sqlite":
        return {SQLITE_BEGIN_OPTION: NO_BEGIN}
    settings = _ENGINE_SETTINGS.get(engine)
    if settings is not None and settings.pg_pooler == POOLER_TRANSACTION:
        return read_only_options(engine.dialect.name)
    return {"isolation_level": "AUTOCOMMIT"}


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
