"""A throw-away PostgreSQL database per workload, created and dropped by the benchmark."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine


async def unreachable_reason(admin_url: str) -> str | None:
    """None if PostgreSQL answers at `admin_url`, else why not, in one line."""
    engine = create_async_engine(admin_url, connect_args={"timeout": 5})
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to connect means "not available"
        first = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {first[0] if first else ''}".strip()
    finally:
        await engine.dispose()
    return None


async def server_version(admin_url: str) -> str:
    """The server's version string."""
    engine = create_async_engine(admin_url)
    try:
        async with engine.connect() as connection:
            return str(await connection.scalar(text("SHOW server_version")))
    finally:
        await engine.dispose()


@asynccontextmanager
async def throwaway_database(admin_url: str) -> AsyncIterator[str]:
    """Create an empty database for the block and drop it afterwards; yield its URL."""
    name = f"ledger_bench_{secrets.token_hex(6)}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
