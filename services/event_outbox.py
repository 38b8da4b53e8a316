"""Use case: the event outbox as its writers and its operators see it.

Writers add an event inside their own transaction (`EventOutbox.add`), so it exists
exactly when their change does; the relay (services/relay.py) publishes it. Operators read
the backlog and the events that could not be encoded (`state`), and put mended ones back
(`retry`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from db.wakeups import OUTBOX_CHANNEL, wake_after_commit
from models import utcnow
from models.outbox_event import EVENT_TYPE_MAX_LENGTH
from repositories import OutboxEventRepository, RelayLeaseRepository
from services import validation
from services.cloud_events import EVENT_TYPE
from services.errors import InvalidInput
from services.results import FailedEventRecord, OutboxState
from services.transactions import Sessions, run_in_transaction

MAX_LISTED: Final = 100
LEASE_NAME: Final = "outbox"
"""The `relay_leases` row of the outbox: whoever holds it is the relay publishing."""


class EventOutbox:
    """The `outbox_events` table behind the relay."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    @staticmethod
    async def add(session: AsyncSession, event_type: str, data: Mapping[str, Any]) -> int:
        """Add an event of `event_type` (dotted, e.g. ``ledger.account.opened``) with `data`
        (a JSON object) in `session`'s transaction; its id. The relay wakes at commit."""
        if not isinstance(event_type, str) or not EVENT_TYPE.match(event_type):
            raise InvalidInput(f"event type {validation.shown(event_type)} is not dotted names")
        if len(event_type) > EVENT_TYPE_MAX_LENGTH:
            raise InvalidInput(f"event type longer than {EVENT_TYPE_MAX_LENGTH}")
        try:
            checked = json.loads(json.dumps(dict(data), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"event data must be a JSON object: {exc}") from None
        event_id = await OutboxEventRepository(session).add_event(event_type, checked, now=utcnow())
        wake_after_commit(session, OUTBOX_CHANNEL)
        return event_id

    async def state(self, *, failed: int = 10, timeout: float | None = None) -> OutboxState:  # noqa: ASYNC109
        """The backlog, the failed events (the latest `failed` of them) and the relay
        publishing now, read in one snapshot (within `timeout` seconds)."""
        limit = validation.bounded(failed, "failed", 0, MAX_LISTED)

        async def work(session: AsyncSession) -> OutboxState:
            repo = OutboxEventRepository(session)
            pending, failed_count = await repo.counts()
            rows = await repo.failed(limit) if limit else []
            owner, expires = await RelayLeaseRepository(session).holder(LEASE_NAME)
            live = owner is not None and expires is not None and expires > datetime.now(UTC)
            return OutboxState(
                pending=pending,
                failed=failed_count,
                relay=owner if live else None,
                failed_events=tuple(FailedEventRecord(*row) for row in rows),
            )

        return await run_in_transaction(self._sessions, work, read_only=True, timeout=timeout)

    async def retry(self, event_ids: Sequence[int]) -> int:
        """Put the failed events among `event_ids` back to pending; how many."""
        ids = validation.identifiers(event_ids, "event id", MAX_LISTED)

        async def work(session: AsyncSession) -> int:
            count = await OutboxEventRepository(session).retry(sorted(ids))
            wake_after_commit(session, OUTBOX_CHANNEL)
            return count

        return await run_in_transaction(self._sessions, work)
