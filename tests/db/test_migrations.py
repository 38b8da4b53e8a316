"""The migrations are the schema: up, no drift, down, and up again (also with a revision
added after today's head: the `migration_scripts` fixture)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from db import DatabaseSettings, create_engine, migrations
from tests.support.backends import NewDatabase


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))


async def test_upgrade_check_downgrade_upgrade_round_trip(
    new_database: NewDatabase, migration_scripts: Path
) -> None:
    engine = create_engine(DatabaseSettings(url=await new_database()))
    try:
        assert await migrations.current_revision(engine) is None
        await migrations.upgrade(engine)
        assert await migrations.current_revision(engine) == migrations.head_revision()
        await migrations.check(engine)  # raises if the models and the schema differ
        assert {"users", "accounts", "transfers"} <= await _tables(engine)

        await migrations.downgrade(engine, "base")
        assert await migrations.current_revision(engine) is None
        assert await _tables(engine) <= {"alembic_version"}

        await migrations.upgrade(engine)
        await migrations.check(engine)
    finally:
        await engine.dispose()
