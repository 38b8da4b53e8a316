"""Revision 0002 (jobs, notifications) goes up and down on its own, leaving 0001 intact.

Nothing here assumes 0002 is head: `alembic check` only runs at head, and the
`migration_scripts` fixture also runs every test with one more revision after it.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from db import DatabaseSettings, create_engine, migrations
from tests.support.backends import NewDatabase

LEDGER_TABLES = {"users", "accounts", "transfers"}
JOB_TABLES = {"jobs", "notifications"}


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda c: inspect(c).get_table_names())
    return set(names) - {"alembic_version"}


async def _index_names(engine: AsyncEngine, table: str) -> set[str]:
    async with engine.connect() as connection:
        indexes = await connection.run_sync(lambda c: inspect(c).get_indexes(table))
    return {str(index["name"]) for index in indexes}


async def test_0002_adds_and_removes_only_the_job_tables(
    new_database: NewDatabase, migration_scripts: Path
) -> None:
    engine = create_engine(DatabaseSettings(url=await new_database()))
    try:
        await migrations.upgrade(engine, "0001")
        assert await _tables(engine) == LEDGER_TABLES

        await migrations.upgrade(engine, "0002")
        assert await _tables(engine) == LEDGER_TABLES | JOB_TABLES
        assert "ix_jobs_claimable" in await _index_names(engine, "jobs")

        await migrations.downgrade(engine, "0001")
        assert await migrations.current_revision(engine) == "0001"
        assert await _tables(engine) == LEDGER_TABLES

        await migrations.upgrade(engine)
        assert await migrations.current_revision(engine) == migrations.head_revision()
        await migrations.check(engine)
    finally:
        await engine.dispose()
