"""The consumer's inbox: which messages it has applied, checked and written in one statement."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from models import UTCDateTime


class InboxRepository:
    """Inbox rows of one consumer."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record_new(
        self, consumer: str, message_ids: Sequence[str], *, now: datetime
    ) -> set[str]:
        """Insert a row per id of `message_ids` not yet recorded for `consumer`; the ids that
        were new. One INSERT … ON CONFLICT DO NOTHING RETURNING whose ids arrive as one
        parameter (an array on PostgreSQL, a JSON array on SQLite), so its text never
        changes with the batch size: compiled, and on PostgreSQL prepared, once. There a
        concurrent consumer inserting the same id makes this wait for it: no double effect.
        """
        if not message_ids:
            return set()
        ids = list(dict.fromkeys(message_ids))
        if self.session.get_bind().dialect.name == "postgresql":
            statement, values = _RECORD_PG, ids
        else:
            statement, values = _RECORD_SQLITE, json.dumps(ids)  # type: ignore[assignment]
        rows = await self.session.execute(
            statement, {"consumer": consumer, "ids": values, "now": now}
        )
        return {row[0] for row in rows}


_NOW: Final = bindparam("now", type_=UTCDateTime())
_RECORD_PG: Final = text(
    "INSERT INTO inbox_messages (consumer, message_id, received_at)"
    " SELECT CAST(:consumer AS VARCHAR), i.id, CAST(:now AS TIMESTAMP WITH TIME ZONE)"
    " FROM unnest(CAST(:ids AS VARCHAR[])) AS i(id)"
    " ON CONFLICT (consumer, message_id) DO NOTHING RETURNING message_id"
).bindparams(_NOW)
_RECORD_SQLITE: Final = text(
    "INSERT INTO inbox_messages (consumer, message_id, received_at)"
    " SELECT :consumer, i.value, :now FROM json_each(:ids) AS i WHERE true"
    " ON CONFLICT (consumer, message_id) DO NOTHING RETURNING message_id"
).bindparams(_NOW)
