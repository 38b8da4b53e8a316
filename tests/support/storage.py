"""A database that runs out of room to write, on either engine.

SQLite runs out for real: `PRAGMA max_page_count` caps the file a few pages above its
size. PostgreSQL's disk cannot be filled from a test, so a trigger answers inserts past a
count exactly as the server answers when its disk is full (SQLSTATE 53100, disk_full);
dropping it is the space coming back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from db import DatabaseSettings, create_engine

ROOM_PAGES: Final = 6  # what SQLite may add to the file: a few hundred transfers


@asynccontextmanager
async def little_room(engine: AsyncEngine, after: int) -> AsyncIterator[AsyncEngine]:
    """An engine over the same database that runs out of room after about `after`
    more transfers (SQLite: for real; PostgreSQL: as the server says it)."""
    if engine.dialect.name == "sqlite":
        async with engine.connect() as connection:
            pages = int((await connection.exec_driver_sql("PRAGMA page_count")).scalar_one())
        assert engine.url.database is not None
        full = create_engine(DatabaseSettings(url=str(engine.url)))

        @event.listens_for(full.sync_engine, "connect")
        def _cap(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA max_page_count = {pages + ROOM_PAGES}")
            cursor.close()

        try:
            yield full
        finally:
            await full.dispose()
        return
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "CREATE FUNCTION ledger_test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$"
                f" BEGIN IF (SELECT count(*) FROM transfers) >= {after} THEN"
                " RAISE EXCEPTION 'could not extend file: No space left on device'"
                " USING ERRCODE = 'disk_full'; END IF; RETURN NEW; END $$"
            )
        )
        await connection.execute(
            text(
                "CREATE TRIGGER ledger_test_disk_full BEFORE INSERT ON transfers "
                "FOR EACH ROW EXECUTE FUNCTION ledger_test_disk_full()"
            )
        )
    try:
        yield engine
    finally:
        async with engine.begin() as connection:
            await connection.execute(text("DROP TRIGGER ledger_test_disk_full ON transfers"))
            await connection.execute(text("DROP FUNCTION ledger_test_disk_full()"))
