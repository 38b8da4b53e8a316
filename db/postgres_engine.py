"""The PostgreSQL engine over asyncpg: server-side limits, TLS, and a transaction pooler."""

from __future__ import annotations

import inspect
import os
import uuid
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from db.disconnects import watch_disconnects
from db.settings import DatabaseSettings, SettingsError

# How the server lists our connections (pg_stat_activity.application_name).
APPLICATION_NAME: Final = "ledger"

# How the per-transaction limits statement behind a transaction pooler starts.
TRANSACTION_LIMITS_PREFIX: Final = "SELECT set_config("

# URL query parameters that SQLAlchemy's asyncpg dialect consumes itself; every other one
# is passed on to asyncpg.connect() as a keyword argument.
_ASYNCPG_DIALECT_QUERY_KEYS: Final = frozenset(
    {"prepared_statement_cache_size", "prepared_statement_name_func"}
)


def create_postgres_engine(settings: DatabaseSettings, pool: dict[str, Any]) -> AsyncEngine:
    """The engine for PostgreSQL (directly or behind a transaction pooler), with the pool
    arguments `pool`."""
    url = settings.sqlalchemy_url
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
    engine = create_async_engine(url, connect_args=connect_args, **pool)
    watch_disconnects(engine)
    if settings.pooled_by_transaction:
        _limit_each_transaction(engine, settings)
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
