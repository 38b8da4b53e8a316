"""How every service runs its work: one transaction, retried when the database is busy."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import read_only_options
from services.errors import DatabaseBusy

T = TypeVar("T")

Sessions = async_sessionmaker[AsyncSession]
Work = Callable[[AsyncSession], Awaitable[T]]

DEFAULT_ATTEMPTS: Final = 5
_BACKOFF_BASE_S: Final = 0.005
_BACKOFF_CAP_S: Final = 0.25

# PostgreSQL SQLSTATEs after which running the whole transaction again can succeed:
# serialization_failure, deadlock_detected, lock_not_available (lock_timeout).
_PG_TRANSIENT: Final = frozenset({"40001", "40P01", "55P03"})
_SQLITE_TRANSIENT: Final = ("database is locked", "database table is locked", "database is busy")


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is a busy/locked/serialization failure worth retrying."""
    if not isinstance(exc, DBAPIError):
        return False
    orig: Any = exc.orig
    if getattr(orig, "sqlstate", None) in _PG_TRANSIENT:
        return True
    message = str(orig).lower()
    return any(marker in message for marker in _SQLITE_TRANSIENT)


def backoff_delay(attempt: int) -> float:
    """Exponential backoff with full jitter, so retrying writers spread out."""
    return random.uniform(0, min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt))


async def run_in_transaction(
    sessions: Sessions,
    work: Work[T],
    *,
    read_only: bool = False,
    attempts: int = DEFAULT_ATTEMPTS,
) -> T:
    """Run `work(session)` inside `async with session.begin()`, in a fresh session per try.

    The transaction commits when `work` returns and rolls back when it raises. A
    transient failure reruns the whole unit of work from the start: a partial retry
    inside a failed transaction would build on state that was rolled back. After
    `attempts` tries, `DatabaseBusy`.
    """
    for attempt in range(1, attempts + 1):
        try:
            async with sessions() as session, session.begin():
                if read_only:
                    dialect = session.get_bind().dialect.name
                    await session.connection(execution_options=read_only_options(dialect))
                return await work(session)
        except DBAPIError as exc:
            if not is_transient(exc):
                raise
            if attempt == attempts:
                raise DatabaseBusy(
                    f"the database stayed busy through {attempts} attempts: {exc.orig}"
                ) from exc
        await asyncio.sleep(backoff_delay(attempt))
    raise AssertionError("unreachable")  # pragma: no cover
