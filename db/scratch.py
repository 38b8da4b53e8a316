"""Throw-away PostgreSQL databases, for the tests, the benchmark and measurements."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool


@asynccontextmanager
async def scratch_postgres_database(admin_url: str, prefix: str) -> AsyncIterator[str]:
    """Create an empty database named `prefix_<random>` through `admin_url` (whose user may
    CREATE DATABASE), yield its URL, and drop it afterwards, even with sessions still open.

    Each run getting its own database is what lets parallel runs share one server.
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
