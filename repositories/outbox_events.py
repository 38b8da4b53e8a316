"""Queries over the event outbox: the transfers' events, the relay's claim, marks and counts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple, cast

from sqlalchemy import (
    Integer,
    Table,
    Text,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy import cast as cast_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from db.sqlite_one_hop import DEFERRED
from db.wakeups import OUTBOX_CHANNEL
from models import OutboxEvent, OutboxStatus, RelayLease, UTCDateTime
from repositories.base import Repository


class PendingEvent(NamedTuple):
    """An event as the relay reads it: `data` is the stored JSON text, not yet decoded, so
    that one row that does not decode cannot fail the whole claim."""

    id: int
    type: str
    data: str | None
    created_at: datetime


class OutboxEventRepository(Repository[OutboxEvent]):
    """Events. Writers add them in their own transaction; the relay claims and marks them."""

    model = OutboxEvent

    async def add_event(self, event_type: str, data: Any, *, now: datetime) -> int:
        """Insert one pending event with `data` (JSON) and send NOTIFY on PostgreSQL."""
        table = cast(Table, OutboxEvent.__table__)
        statement = insert(table).values(type=event_type, data=data, created_at=now)
        event_id = int((await self.session.execute(statement.returning(table.c.id))).scalar_one())
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(_NOTIFY, {"channel": OUTBOX_CHANNEL})
        return event_id

    async def add_transfer_events(
        self, event_type: str, transfer_ids: Sequence[int], *, now: datetime
    ) -> None:
        """One event of `event_type` per transfer in `transfer_ids` (written in this
        transaction), its data built by the database from the transfer's row, in id order.

        SQLite only: on PostgreSQL the events are part of `TransferRepository
        .insert_and_apply`'s one statement. Sent DEFERRED (nothing is read back).
        """
        if transfer_ids:
            await self.session.execute(
                _ADD_TRANSFER_EVENTS_SQLITE,
                {"type": event_type, "ids": json.dumps(list(transfer_ids)), "now": now},
            )

    async def pending(self, limit: int) -> list[PendingEvent]:
        """Up to `limit` pending events, lowest id first (the partial index, in order)."""
        rows = await self.session.execute(_PENDING, {"limit": limit})
        return [PendingEvent(*row) for row in rows]

    async def mark_sent(self, ids: Sequence[int], *, now: datetime) -> int:
        """Mark the pending events among `ids` sent; how many it marked."""
        if not ids:
            return 0
        result = await self.session.execute(_MARK_SENT, {"ids": list(ids), "now": now})
        return len(result.all())

    async def mark_failed(self, failures: Sequence[tuple[int, str]]) -> None:
        """Mark each pending (id, reason) of `failures` failed, keeping the reason."""
        if failures:
            await self.session.execute(
                _MARK_FAILED, [{"event_id": i, "error": e} for i, e in failures]
            )

    async def retry(self, ids: Sequence[int]) -> int:
        """Put failed events among `ids` back to pending (after their data was mended), with
        NOTIFY on PostgreSQL so that a relay picks them up at commit."""
        if not ids:
            return 0
        statement = (
            update(OutboxEvent)
            .where(OutboxEvent.id.in_(list(ids)), OutboxEvent.status == OutboxStatus.FAILED)
            .values(status=OutboxStatus.PENDING, error=None)
            .returning(OutboxEvent.id)
            .execution_options(synchronize_session=False)
        )
        count = len((await self.session.execute(statement)).all())
        if count and self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(_NOTIFY, {"channel": OUTBOX_CHANNEL})
        return count

    async def counts(self) -> tuple[int, int]:
        """(pending, failed) events, in one statement; both are counted on their partial
        index, so the cost is the backlog's, not the history's."""
        row = (await self.session.execute(_COUNTS)).one()
        return int(row[0]), int(row[1])

    async def failed(self, limit: int) -> list[tuple[int, str, str | None, datetime]]:
        """The latest failed events, newest first: (id, type, error, created_at)."""
        rows = await self.session.execute(
            select(OutboxEvent.id, OutboxEvent.type, OutboxEvent.error, OutboxEvent.created_at)
            .where(literal_column("status = 'failed'"))
            .order_by(OutboxEvent.id.desc())
            .limit(limit)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


class RelayLeaseRepository:
    """The lease that makes one relay at a time the outbox's publisher."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def acquire(self, name: str, owner: str, *, now: datetime, until: datetime) -> bool:
        """Take or renew the lease `name` for `owner` until `until`, if it is free, expired
        or already `owner`'s: one atomic upsert. True if `owner` holds it now."""
        dialect = self.session.get_bind().dialect.name
        statement = _ACQUIRE_PG if dialect == "postgresql" else _ACQUIRE_SQLITE
        row = await self.session.execute(
            statement, {"name": name, "owner": owner, "now": now, "until": until}
        )
        return row.first() is not None

    async def release(self, name: str, owner: str) -> None:
        """Give the lease up if `owner` holds it, so a standby takes over at once."""
        await self.session.execute(
            update(RelayLease)
            .where(RelayLease.name == name, RelayLease.owner == owner)
            .values(owner=None, expires_at=None)
            .execution_options(synchronize_session=False)
        )

    async def holder(self, name: str) -> tuple[str | None, datetime | None]:
        """Who holds the lease and until when (None, None when nobody ever took it)."""
        row = (
            await self.session.execute(
                select(RelayLease.owner, RelayLease.expires_at).where(RelayLease.name == name)
            )
        ).first()
        return (None, None) if row is None else (row[0], row[1])


_events = cast(Table, OutboxEvent.__table__)
_TIME: Final = UTCDateTime()
_NOTIFY: Final = text("SELECT pg_notify(:channel, '')")

# The data is read as text (CAST: no JSON decoding by the driver or SQLAlchemy): the relay
# decodes each event by itself, and one that does not decode is marked failed rather than
# failing the whole claim.
_PENDING: Final = (
    select(
        _events.c.id,
        _events.c.type,
        cast_(_events.c.data, Text()),
        _events.c.created_at,
    )
    # Literal, not bound: the planner must see that the partial index's WHERE holds.
    .where(literal_column("status = 'pending'"))
    .order_by(_events.c.id)
    .limit(bindparam("limit", type_=Integer))
)
_MARK_SENT: Final = (
    update(OutboxEvent)
    .where(
        OutboxEvent.id.in_(bindparam("ids", expanding=True)),
        OutboxEvent.status == OutboxStatus.PENDING,
    )
    .values(status=OutboxStatus.SENT, sent_at=bindparam("now", type_=_TIME), error=None)
    .returning(OutboxEvent.id)
    .execution_options(synchronize_session=False)
)
_MARK_FAILED: Final = (
    update(_events)
    .where(
        _events.c.id == bindparam("event_id"),
        _events.c.status == OutboxStatus.PENDING.value,
    )
    .values(status=OutboxStatus.FAILED.value, error=bindparam("error"))
)
_COUNTS: Final = select(
    select(func.count())
    .select_from(_events)
    .where(literal_column("status = 'pending'"))
    .scalar_subquery(),
    select(func.count())
    .select_from(_events)
    .where(literal_column("status = 'failed'"))
    .scalar_subquery(),
)

_ADD_TRANSFER_EVENTS_SQLITE: Final = text(
    f"""INSERT {DEFERRED} INTO outbox_events (type, data, status, created_at)
SELECT :type,
       json_object('transfer_id', t.id, 'source_account_id', t.source_account_id,
                   'destination_account_id', t.destination_account_id, 'amount', t.amount,
                   'currency', t.currency),
       'pending', :now
FROM transfers AS t
WHERE t.id IN (SELECT value FROM json_each(:ids))
ORDER BY t.id"""
).bindparams(bindparam("now", type_=_TIME))

_leases = cast(Table, RelayLease.__table__)


def _acquire(dialect_insert: Any) -> Any:
    # Taken when free, expired or already ours; otherwise the WHERE of DO UPDATE skips the
    # row and RETURNING gives nothing. One statement, atomic on both engines.
    until = bindparam("until", type_=_TIME)
    now = bindparam("now", type_=_TIME)
    statement = dialect_insert(_leases).values(
        name=bindparam("name"), owner=bindparam("owner"), expires_at=until
    )
    current = _leases.c
    return statement.on_conflict_do_update(
        index_elements=[current.name],
        set_={"owner": statement.excluded.owner, "expires_at": statement.excluded.expires_at},
        where=(current.owner.is_(None))
        | (current.owner == bindparam("owner"))
        | (current.expires_at < now),
    ).returning(current.name)


_ACQUIRE_PG: Final = _acquire(postgresql.insert)
_ACQUIRE_SQLITE: Final = _acquire(sqlite.insert)
