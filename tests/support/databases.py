"""Throw-away databases for the suite: SQLite files and PostgreSQL databases.

Every run gets its own PostgreSQL databases (created from TEST_POSTGRES_URL, dropped at
the end), so parallel runs on one server never see each other's rows.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

HOW_TO_ENABLE = (
    f"PostgreSQL is not reachable at {make_url(POSTGRES_URL).render_as_string()}; "
    "start a server there (any user allowed to CREATE DATABASE) or set "
    "TEST_POSTGRES_URL=postgresql+asyncpg://user:password@host:port/dbname to run these tests"
)


async def postgres_unreachable_reason() -> str | None:
    """None if the admin URL answers, else why not (with how to fix it)."""
    engine = create_async_engine(POSTGRES_URL, connect_args={"timeout": 5})
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to connect means "not available"
        return f"{HOW_TO_ENABLE} ({type(exc).__name__}: {exc})"
    finally:
        await engine.dispose()
    return None


@asynccontextmanager
async def scratch_postgres_database(admin_url: str, prefix: str) -> AsyncIterator[str]:
    """Create an empty database named `prefix_<random>` through `admin_url` (whose user may
    CREATE DATABASE), yield its URL, and drop it afterwards, even with sessions still open.

    Each run getting its own database is what lets parallel runs share one server; the lab's
    benchmarks use it too.
    """
    name = f"{prefix}_{secrets.token_hex(6)}"
    # No pool: an idle admin connection kept for the database's whole life would count
    # against the server's max_connections once per live scratch database.
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def postgres_database() -> AbstractAsyncContextManager[str]:
    """Create an empty database for the duration of the block; yield its URL."""
    return scratch_postgres_database(POSTGRES_URL, "ledger_test")


def sqlite_database(folder: Path) -> str:
    """A URL for a new SQLite file in `folder`."""
    return f"sqlite+aiosqlite:///{folder / f'ledger-{secrets.token_hex(4)}.db'}"
