"""The consumer's inbox: which messages it has applied, checked and written in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from models import InboxMessage


class InboxRepository:
    """Inbox rows of one consumer."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record_new(
        self, consumer: str, message_ids: Sequence[str], *, now: datetime
    ) -> set[str]:
        """Insert a row per id of `message_ids` not yet recorded for `consumer`; the ids that
        were new. One INSERT … ON CONFLICT DO NOTHING RETURNING: on PostgreSQL a concurrent
        consumer inserting the same id makes this wait for it, never a duplicate effect."""
        if not message_ids:
            return set()
        table = cast(Table, InboxMessage.__table__)
        dialect = self.session.get_bind().dialect.name
        insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = (
            insert(table)
            .values(
                [
                    {"consumer": consumer, "message_id": message_id, "received_at": now}
                    for message_id in dict.fromkeys(message_ids)
                ]
            )
            .on_conflict_do_nothing(index_elements=[table.c.consumer, table.c.message_id])
            .returning(table.c.message_id)
        )
        return set((await self.session.execute(statement)).scalars())
