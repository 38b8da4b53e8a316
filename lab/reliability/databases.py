"""Throw-away databases for a soak: a SQLite file in a temporary folder, or a PostgreSQL
database created next to an admin URL and dropped afterwards."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine


@asynccontextmanager
async def sqlite_database() -> AsyncIterator[str]:
    """A URL for a new SQLite file; the folder is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="ledger-soak-") as folder:
        yield f"sqlite+aiosqlite:///{Path(folder) / 'soak.db'}"


@asynccontextmanager
async def postgres_database(admin_url: str) -> AsyncIterator[str]:
    """Create an empty database on the server of `admin_url`; drop it afterwards."""
    name = f"ledger_soak_{secrets.token_hex(6)}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as connection:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()
