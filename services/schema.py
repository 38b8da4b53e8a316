"""The start-up check: is the database's schema at the revision this code was written for?"""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from db import migrations
from services.db_errors import MIGRATE_HINT, translate
from services.errors import SchemaNotMigrated


async def ensure_migrated(engine: AsyncEngine) -> None:
    """Raise SchemaNotMigrated unless the database behind `engine` is at the newest revision.

    Call it once at start-up, after `await db.migrations.upgrade(engine)` or instead of it
    where another process migrates. One query; the use cases do not repeat it: a table
    that is missing later still surfaces as SchemaNotMigrated from the failing statement.
    """
    missing = migrations.missing_sqlite_file(engine)
    if missing is not None:
        raise SchemaNotMigrated(
            f"the database has no schema: there is no file {missing} (none was created); "
            f"{MIGRATE_HINT}",
            current=None,
            head=migrations.head_revision(),
        )
    try:
        current = await migrations.current_revision(engine)
    except (SQLAlchemyError, OSError) as exc:
        error = translate(exc, engine)
        if error is None:
            raise
        raise error from exc
    head = migrations.head_revision()
    if current == head:
        return
    if current is None:
        message = f"the database has no schema; {MIGRATE_HINT}"
    elif not migrations.is_known_revision(current):
        message = (
            f"the database is at revision {current}, which this code does not know "
            "(newer code migrated it); run it with that code"
        )
    else:
        message = f"the database is at revision {current}, this code expects {head}; {MIGRATE_HINT}"
    raise SchemaNotMigrated(message, current=current, head=head)
