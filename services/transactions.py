"""How every service runs its work: one transaction, retried when the database is busy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Final, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import read_only_options
from services import validation
from services.backoff import Backoff
from services.db_errors import is_transient, translate
from services.errors import OperationTimeout

T = TypeVar("T")

Sessions = async_sessionmaker[AsyncSession]
Work = Callable[[AsyncSession], Awaitable[T]]
ConnectionWork = Callable[[Connection], T]

DEFAULT_ATTEMPTS: Final = 5
# A busy database clears in milliseconds (a writer commits): short steps, a low cap.
RETRY_BACKOFF: Final = Backoff(base_seconds=0.01, cap_seconds=0.25)


def backoff_delay(attempt: int) -> float:
    """Seconds before retry number `attempt` of a transaction that met a busy database."""
    return RETRY_BACKOFF.delay(attempt)


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
    async def once() -> T:
        async with sessions() as session, session.begin():
            if read_only:
                dialect = session.get_bind().dialect.name
                await session.connection(execution_options=read_only_options(dialect))
            return await work(session)

    return await _retrying(once, sessions, attempts)


async def _retrying(once: Callable[[], Awaitable[T]], sessions: Sessions, attempts: int) -> T:
    """The one retry rule: rerun `once` from the start while the failure is transient,
    then translate what is left (services/db_errors.translate)."""
    for attempt in range(1, attempts + 1):
        try:
            return await once()
        except (DBAPIError, PoolTimeoutError) as exc:
            if is_transient(exc) and attempt < attempts:
                await asyncio.sleep(backoff_delay(attempt))
                continue
            error = translate(exc, _engine(sessions), attempts=attempt)
            if error is None:
                raise
            raise error from exc
    raise AssertionError("unreachable")  # pragma: no cover


async def run_read(
    sessions: Sessions,
    work: ConnectionWork[T],
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    timeout: float | None = None,  # noqa: ASYNC109 (covers retries; raises OperationTimeout)
) -> T:
    """Run the synchronous `work(connection)` in a read-only transaction on a pooled
    Core connection: the same transaction, retries, deadline and errors as
    `run_in_transaction(..., read_only=True)`, without an ORM session.

    For the small hot reads of every request (the token lookup): `work` runs in a single
    greenlet, so checkout, BEGIN, the statements and COMMIT cost one switch into
    SQLAlchemy's sync core rather than one per step, and no identity map is built.
    """
    engine = _engine(sessions)
    if engine is None:  # a factory bound to a connection or nothing: the general path
        return await run_in_transaction(
            sessions,
            lambda session: session.run_sync(lambda s: work(s.connection())),
            read_only=True,
            attempts=attempts,
            timeout=timeout,
        )

    async def once() -> T:
        async with engine.connect() as connection:
            return await connection.run_sync(_read_only, work)

    async with deadline(timeout):
        return await _retrying(once, sessions, attempts)


@asynccontextmanager
async def streaming_read(sessions: Sessions) -> AsyncIterator[AsyncSession]:
    """A session in a read-only transaction (one consistent snapshot) for results too
    large to hold: inside the block, read them with `session.stream()`,
    `stream_scalars()` or `yield_per`, which fetch in batches from a server-side cursor.

    The transaction and its pooled connection last as long as the block, so consume
    promptly. Unlike `run_in_transaction` it is not retried (rows already handed on
    cannot be taken back); a database error still reaches the caller translated into a
    services.errors exception.
    """
    try:
        async with sessions() as session, session.begin():
            dialect = session.get_bind().dialect.name
            await session.connection(execution_options=read_only_options(dialect))
            yield session
    except (DBAPIError, PoolTimeoutError) as exc:
        error = translate(exc, _engine(sessions))
        if error is None:
            raise
        raise error from exc


def _read_only(connection: Connection, work: ConnectionWork[T]) -> T:
    connection.execution_options(**read_only_options(connection.dialect.name))
    with connection.begin():
        return work(connection)


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


def _engine(sessions: Sessions) -> AsyncEngine | None:
    bind = sessions.kw.get("bind")
    return bind if isinstance(bind, AsyncEngine) else None


# The unit of work is public: a service added to this project (or a tool beside it) runs its
# work through these, and `is_transient` is the one rule for what a retry may cure.
__all__ = [
    "DEFAULT_ATTEMPTS",
    "ConnectionWork",
    "Sessions",
    "Work",
    "backoff_delay",
    "deadline",
    "is_transient",
    "run_in_transaction",
    "run_read",
]
