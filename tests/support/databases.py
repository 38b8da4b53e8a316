"""Throw-away databases for the suite: SQLite files and PostgreSQL databases.

Every run gets its own PostgreSQL databases (created from TEST_POSTGRES_URL, dropped at
the end), so parallel runs on one server never see each other's rows.
"""

from __future__ import annotations

import os
import secrets
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from db.scratch import scratch_postgres_database

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


def postgres_database() -> AbstractAsyncContextManager[str]:
    """Create an empty database for the duration of the block; yield its URL."""
    return scratch_postgres_database(POSTGRES_URL, "ledger_test")


def sqlite_database(folder: Path) -> str:
    """A URL for a new SQLite file in `folder`."""
    return f"sqlite+aiosqlite:///{folder / f'ledger-{secrets.token_hex(4)}.db'}"
