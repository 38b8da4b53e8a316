"""How every service runs its work: one transaction, retried when the database is busy."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import engine_settings, read_only_options
from services import validation
from services.errors import DatabaseBusy, OperationTimeout, PoolExhausted

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
# query_canceled: on our connections, that is statement_timeout (DB_STATEMENT_TIMEOUT_MS).
_PG_STATEMENT_TIMEOUT: Final = "57014"


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
    timeout: float | None = None,  # noqa: ASYNC109 (covers retries; raises OperationTimeout)
) -> T:
    """Run `work(session)` inside `async with session.begin()`, in a fresh session per try.

    The transaction commits when `work` returns and rolls back when it raises. A
    transient failure reruns the whole unit of work from the start: a partial retry
    inside a failed transaction would build on state that was rolled back. After
    `attempts` tries, `DatabaseBusy`.

    `timeout` is a deadline in seconds for the whole operation, retries and waiting for
    a pooled connection included: past it the work is cancelled, rolled back, its
    connection returned, and `OperationTimeout` raised. No free connection within
    DB_POOL_TIMEOUT raises `PoolExhausted`.
    """
    async with deadline(timeout):
        return await _run_with_retries(sessions, work, read_only, attempts)


async def _run_with_retries(
    sessions: Sessions,
    work: Work[T],
    read_only: bool,
    attempts: int,
) -> T:
    for attempt in range(1, attempts + 1):
        try:
            async with sessions() as session, session.begin():
                if read_only:
                    dialect = session.get_bind().dialect.name
                    await session.connection(execution_options=read_only_options(dialect))
                return await work(session)
        except PoolTimeoutError as exc:
            raise pool_exhausted(sessions) from exc
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == _PG_STATEMENT_TIMEOUT:
                raise OperationTimeout(
                    "the database cancelled a statement that ran past DB_STATEMENT_TIMEOUT_MS"
                ) from exc
            if not is_transient(exc):
                raise
            if attempt == attempts:
                raise DatabaseBusy(
                    f"the database stayed busy through {attempts} attempts: {exc.orig}"
                ) from exc
        await asyncio.sleep(backoff_delay(attempt))
    raise AssertionError("unreachable")  # pragma: no cover


@asynccontextmanager
async def deadline(seconds: float | None) -> AsyncIterator[None]:
    """Cancel the block after `seconds` and raise `OperationTimeout` (None: no deadline).

    Cancelling is safe for database work: a statement in flight is stopped (on SQLite
    by interrupting it, see db/cancellation.py), the transaction rolls back and the
    connection goes back to the pool. A COMMIT that was already sent may still have
    taken effect, as with any timeout; idempotency keys make the retry safe.
    """
    seconds = validation.timeout(seconds)
    if seconds is None:
        yield
        return
    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            yield
    except TimeoutError as exc:
        if not scope.expired():
            raise
        raise OperationTimeout(
            f"the operation did not finish within {seconds:g}s and was cancelled"
        ) from exc


def pool_exhausted(sessions: Sessions) -> PoolExhausted:
    """The error for a pool checkout that timed out, naming the settings that size the pool."""
    bind = sessions.kw.get("bind")
    settings = engine_settings(bind) if isinstance(bind, AsyncEngine) else None
    if settings is not None:
        size, overflow = settings.pool_size, settings.max_overflow
        limits = (
            f"all {size + overflow} connections (DB_POOL_SIZE={size} + DB_MAX_OVERFLOW="
            f"{overflow}) stayed in use for DB_POOL_TIMEOUT={settings.pool_timeout:g}s"
        )
    else:
        limits = "all DB_POOL_SIZE + DB_MAX_OVERFLOW connections stayed in use for DB_POOL_TIMEOUT"
    return PoolExhausted(
        f"connection pool exhausted: {limits}; lower the concurrency or raise these settings"
    )
