"""A throw-away PostgreSQL database per workload, created and dropped by the benchmark."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.databases import scratch_postgres_database


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


def throwaway_database(admin_url: str) -> AbstractAsyncContextManager[str]:
    """Create an empty database for the block and drop it afterwards; yield its URL."""
    return scratch_postgres_database(admin_url, "ledger_bench")
