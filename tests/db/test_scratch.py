"""A scratch PostgreSQL database holds no server connection of its own while it lives."""

from __future__ import annotations

from sqlalchemy import text

from db import DatabaseSettings, create_engine
from tests.support.backends import NewDatabase, postgres_direct_only
from tests.support.databases import POSTGRES_URL, scratch_postgres_database


@postgres_direct_only
async def test_a_live_scratch_database_leaves_no_admin_connection_open(
    new_database: NewDatabase,  # skips (fails in CI) when PostgreSQL is not there
) -> None:
    async with scratch_postgres_database(POSTGRES_URL, "scratch_probe") as url:
        name = url.rsplit("/", 1)[-1]
        probe = create_engine(DatabaseSettings(url=POSTGRES_URL, pool_size=1, max_overflow=0))
        try:
            async with probe.connect() as connection:
                admins = await connection.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE query LIKE :created"),
                    {"created": f'CREATE DATABASE "{name}"%'},
                )
        finally:
            await probe.dispose()
    assert admins == 0
