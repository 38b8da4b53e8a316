"""The SQL the bench-only routes send, and their rows as the API's own response models.

Every variant that reads or writes with its own SQL (the bench routes of the async apps,
the sync app) uses these statements, so the variants differ in how they are called, not
in what they ask the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from api.schemas import AccountOut
from lab.bench.sql import ACCOUNT, SLEEP

# The stand-in for a slow remote call ("waits elsewhere") and the database-side wait.
REMOTE_SECONDS: Final = 0.1
DB_SLEEP_SECONDS: Final = 0.1

ACCOUNT_NAMED: Final = ACCOUNT.format(":id")
SLEEP_NAMED: Final = SLEEP.format(":seconds")


def timestamp(value: Any) -> datetime:
    """A timestamp column as the ORM reads it: aware, in UTC (SQLite stores naive text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def account_out(row: Sequence[Any]) -> AccountOut:
    """An ACCOUNT row (id, owner_id, currency, balance, created_at, updated_at)."""
    return AccountOut(
        id=row[0],
        owner_id=row[1],
        currency=row[2],
        balance=row[3],
        created_at=timestamp(row[4]),
        updated_at=timestamp(row[5]),
    )
