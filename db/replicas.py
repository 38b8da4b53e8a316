"""Reads on a standby, with read-your-writes.

With `DATABASE_READ_URL` set (e.g. the formation's nodes with
`target_session_attrs=prefer-standby`), `create_engine` attaches a second engine, the
replica, to the primary's. Reads that may run on a standby (services pass
`standby_ok=True`: account history, the dashboard) go there; everything else, and every
write, stays on the primary.

Read-your-writes rests on WAL positions (LSNs). After a write commits, its caller's
`Position` learns the primary's WAL position (`pg_current_wal_lsn()`, at or past the
commit record; one round trip, only when a replica is attached). A read with a position
checks the standby's `pg_last_wal_replay_lsn()` first: at or past it, the read runs there
in a transaction that starts after the check, so its snapshot holds the write; behind it,
the check is repeated for up to `REPLAY_WAIT_S`, then the read goes to the primary. A
standby that fails is skipped for `DOWN_FOR_S`; one whose replay trails what it received
by more than `MAX_REPLAY_LAG_S` (paused, or overloaded) is skipped without a position too.

The position lives in a context variable holding a mutable `Position`: one task's reads
see its own writes with nothing passed around; the HTTP API carries it between requests in
the `Ledger-Read-After` header (api/middleware.py).
"""

from __future__ import annotations

import asyncio
import re
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.disconnects import is_disconnect

# How long a read with a position waits for the standby to replay it before it goes to
# the primary. Synchronous replication (the formation's default) flushes on the standby
# before COMMIT returns; replay follows within milliseconds unless the standby is busy.
REPLAY_WAIT_S: Final = 0.05
_REPLAY_POLL_S: Final = 0.005
# A standby whose replay trails what it has received by longer than this is lagging.
MAX_REPLAY_LAG_S: Final = 5.0
# A standby that failed is not tried again for this long.
DOWN_FOR_S: Final = 5.0

_LSN: Final = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


def parse_lsn(value: str) -> int | None:
    """An LSN as PostgreSQL prints it (`16/B374D848`) as a number; None if malformed."""
    match = _LSN.match(value.strip())
    return None if match is None else (int(match[1], 16) << 32) | int(match[2], 16)


def format_lsn(value: int) -> str:
    """The inverse of `parse_lsn`."""
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


@dataclass(slots=True)
class Position:
    """What one caller (a task, an HTTP request) has written: reads must see `lsn`."""

    lsn: int | None = None

    def advance(self, lsn: int | None) -> None:
        """Move forward to `lsn` (never back)."""
        if lsn is not None and (self.lsn is None or lsn > self.lsn):
            self.lsn = lsn


_position: ContextVar[Position | None] = ContextVar("ledger_read_position", default=None)


def current_position() -> Position:
    """This context's position, created on first use (shared by its later tasks)."""
    position = _position.get()
    if position is None:
        position = Position()
        _position.set(position)
    return position


def start_position(lsn: int | None = None) -> Position:
    """Give this context a position of its own, starting at `lsn` (e.g. from a request
    header), so that it neither shares nor leaks another caller's."""
    position = Position(lsn)
    _position.set(position)
    return position


@dataclass(slots=True)
class _Replica:
    engine: AsyncEngine
    down_until: float = 0.0


_REPLICAS: Final[weakref.WeakKeyDictionary[Engine, _Replica]] = weakref.WeakKeyDictionary()


def attach_replica(primary: AsyncEngine, replica: AsyncEngine) -> None:
    """Route `standby_ok` reads of `primary` to `replica`; disposing the primary disposes it."""
    _REPLICAS[primary.sync_engine] = _Replica(replica)

    @event.listens_for(primary.sync_engine, "engine_disposed")
    def _dispose(_engine: Engine) -> None:
        # Called inside AsyncEngine.dispose()'s greenlet, where a sync dispose may await.
        replica.sync_engine.dispose()


def replica_of(primary: AsyncEngine) -> AsyncEngine | None:
    """The engine `standby_ok` reads of `primary` may use, if any."""
    found = _REPLICAS.get(primary.sync_engine)
    return None if found is None else found.engine


async def note_write(primary: AsyncEngine) -> None:
    """After a commit on `primary`: advance this context's position to the primary's WAL
    position (nothing to do without a replica)."""
    if primary.sync_engine not in _REPLICAS:
        return
    async with primary.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        lsn = await autocommit.scalar(text("SELECT pg_current_wal_lsn()::text"))
    current_position().advance(parse_lsn(str(lsn)))


@asynccontextmanager
async def read_connection(primary: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for a read that may run on a standby: the replica's when it has
    replayed this context's writes (waiting up to REPLAY_WAIT_S), else the primary's."""
    replica = _REPLICAS.get(primary.sync_engine)
    if replica is None or replica.down_until > time.monotonic():
        async with primary.connect() as connection:
            yield connection
        return
    chosen: AsyncConnection | None = None
    try:
        async with replica.engine.connect() as connection:
            if await _caught_up(connection, current_position().lsn):
                chosen = connection
                yield connection
                return
    except Exception as exc:
        if chosen is not None or not is_disconnect(exc):
            raise  # the read's own failure, or not the standby's fault
        replica.down_until = time.monotonic() + DOWN_FOR_S
    async with primary.connect() as connection:
        yield connection


async def _caught_up(connection: AsyncConnection, lsn: int | None) -> bool:
    # Autocommit: the check is not part of the read's transaction, whose snapshot is
    # then taken after it, with everything replayed so far.
    checking = await connection.execution_options(isolation_level="AUTOCOMMIT")
    deadline = time.monotonic() + REPLAY_WAIT_S
    while True:
        row = (
            await checking.execute(
                text(
                    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
                    "pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn() AND "
                    "now() - pg_last_xact_replay_timestamp() > make_interval(secs => :lag)"
                ),
                {"lag": MAX_REPLAY_LAG_S},
            )
        ).one()
        in_recovery, replayed, lagging = row
        if not in_recovery:
            break  # prefer-standby fell back to the primary (or it was promoted)
        if lagging:
            await connection.commit()
            return False
        if lsn is None or (parse_lsn(str(replayed)) or 0) >= lsn:
            break
        if time.monotonic() >= deadline:
            await connection.commit()
            return False
        await asyncio.sleep(_REPLAY_POLL_S)  # polling the standby's replay, bounded above
    await connection.commit()
    await connection.execution_options(isolation_level=connection.default_isolation_level)
    return True
