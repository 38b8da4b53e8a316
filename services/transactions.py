"""How every service runs its work: one transaction, retried when the database is busy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final, TypeVar

from sqlalchemy import Connection, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

from db import (
    is_disconnect,
    note_write,
    one_statement_read_options,
    read_connection,
    read_only_options,
)
from services import validation
from services.backoff import Backoff
from services.db_errors import is_transient, translate
from services.errors import OperationTimeout, OutcomeUnknown

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
    standby_ok: bool = False,
    attempts: int = DEFAULT_ATTEMPTS,
    timeout: float | None = None,  # noqa: ASYNC109 (covers retries; raises OperationTimeout)
) -> T:
    """Run `work(session)` inside `async with session.begin()`, in a fresh session per try.

    The transaction commits when `work` returns and rolls back when it raises. A
    transient failure reruns the whole unit of work from the start: a partial retry
    inside a failed transaction would build on state that was rolled back. After
    `attempts` tries, `DatabaseBusy`. A connection lost before COMMIT (a failover, a
    restarted server) is retried the same way, on a fresh connection (with a multi-host
    URL, to whichever node is primary now), then `DatabaseUnavailable`; one lost after
    COMMIT was sent raises `OutcomeUnknown` at once.

    `timeout` is a deadline in seconds for the whole operation, retries and waiting for
    a pooled connection included: past it the work is cancelled, rolled back, its
    connection returned, and `OperationTimeout` raised. No free connection within
    DB_POOL_TIMEOUT raises `PoolExhausted`.

    `standby_ok` (with `read_only`): the read may run on a standby when the engine has
    one (DATABASE_READ_URL), once it has replayed this context's writes (db/replicas.py).
    """
    async with deadline(timeout):
        result = await _run_with_retries(sessions, work, read_only, standby_ok, attempts)
    engine = _engine(sessions)
    if not read_only and engine is not None:
        await note_write(engine)
    return result


async def _run_with_retries(
    sessions: Sessions,
    work: Work[T],
    read_only: bool,
    standby_ok: bool,
    attempts: int,
) -> T:
    engine = _engine(sessions)

    async def run(session: AsyncSession, progress: _Progress) -> T:
        session.info[_PROGRESS] = progress
        async with session.begin():
            if read_only:
                dialect = session.get_bind().dialect.name
                await session.connection(execution_options=read_only_options(dialect))
            # Otherwise the work's first statement connects, so it may still choose the
            # connection's options (the job queue's one-statement claims run in autocommit).
            result = await work(session)
            await session.flush()
            progress.committing = True  # leaving the block sends COMMIT
            return result

    async def once(progress: _Progress) -> T:
        if read_only and standby_ok and engine is not None:
            async with read_connection(engine) as connection, sessions(bind=connection) as session:
                return await run(session, progress)
        async with sessions() as session:
            return await run(session, progress)

    return await _retrying(once, sessions, attempts, read_only=read_only)


@dataclass(slots=True)
class _Progress:
    """How far one try got: what a lost connection means depends on it."""

    connected: bool = False  # an OSError before this is the database's, after it is work's
    committing: bool = False  # COMMIT sent: a lost connection leaves the outcome unknown


_PROGRESS: Final = "ledger.progress"


@event.listens_for(Session, "after_begin")
def _connected(session: Session, _transaction: SessionTransaction, _connection: Connection) -> None:
    # The session has its connection: an OSError from here on is the work's own I/O.
    progress = session.info.get(_PROGRESS)
    if progress is not None:
        progress.connected = True


async def _retrying(
    once: Callable[[_Progress], Awaitable[T]],
    sessions: Sessions,
    attempts: int,
    *,
    read_only: bool,
) -> T:
    """The one retry rule: rerun `once` from the start while the failure is transient or
    a lost connection before COMMIT (the server rolled the work back; the pool has dropped
    that server's connections, db/disconnects.py), then translate what is left
    (services/db_errors.translate). A connection lost after COMMIT was sent is
    OutcomeUnknown, never retried here: only the caller can tell whether it is safe."""
    for attempt in range(1, attempts + 1):
        progress = _Progress()
        try:
            return await once(progress)
        except (DBAPIError, PoolTimeoutError, OSError) as exc:
            if isinstance(exc, OSError) and progress.connected:
                raise  # the work's own I/O, not the database's
            lost = is_disconnect(exc, read_only=read_only)
            if lost and progress.committing and not read_only:
                raise OutcomeUnknown(
                    "the database connection was lost after COMMIT was sent, so the work may "
                    "or may not have committed; retry only with the same idempotency key"
                ) from exc
            if (lost or is_transient(exc)) and attempt < attempts:
                await asyncio.sleep(backoff_delay(attempt))
                continue
            error = translate(exc, _engine(sessions), attempts=attempt, read_only=read_only)
            if error is None:
                raise
            raise error from exc
    raise AssertionError("unreachable")  # pragma: no cover


async def run_read(
    sessions: Sessions,
    work: ConnectionWork[T],
    *,
    standby_ok: bool = False,
    one_statement: bool = False,
    attempts: int = DEFAULT_ATTEMPTS,
    timeout: float | None = None,  # noqa: ASYNC109 (covers retries; raises OperationTimeout)
) -> T:
    """Run the synchronous `work(connection)` in a read-only transaction on a pooled
    Core connection: the same transaction, retries, deadline and errors as
    `run_in_transaction(..., read_only=True)`, without an ORM session.

    For the small hot reads of every request (the token lookup): `work` runs in a single
    greenlet, so checkout, BEGIN, the statements and COMMIT cost one switch into
    SQLAlchemy's sync core rather than one per step, and no identity map is built.

    `one_statement`: `work` runs a single statement, which needs no transaction around
    it, so none is begun (db.one_statement_read_options): no BEGIN or COMMIT round trip.
    """
    engine = _engine(sessions)
    if engine is None:  # a factory bound to a connection or nothing: the general path
        return await run_in_transaction(
            sessions,
            lambda session: session.run_sync(lambda s: work(s.connection())),
            read_only=True,
            standby_ok=standby_ok,
            attempts=attempts,
            timeout=timeout,
        )

    async def once(progress: _Progress) -> T:
        connect = read_connection(engine) if standby_ok else engine.connect()
        async with connect as connection:
            progress.connected = True
            return await connection.run_sync(_read_only, work, one_statement)

    async with deadline(timeout):
        return await _retrying(once, sessions, attempts, read_only=True)


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


def _read_only(connection: Connection, work: ConnectionWork[T], one_statement: bool) -> T:
    options = (
        one_statement_read_options(connection.engine)
        if one_statement
        else read_only_options(connection.dialect.name)
    )
    connection.execution_options(**options)
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
