"""Read-only queries that pair transfers with their outbox jobs and notifications."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Job, Notification, Transfer


class OutboxJob(NamedTuple):
    """A job as the outbox audit sees it: which transfer it names and how it stands."""

    job_id: int
    transfer_id: int | None
    status: str


class OutboxAuditRepository:
    """The three columns the outbox audit compares, each in one query."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def transfer_destinations(self) -> dict[int, int | None]:
        """Every transfer's destination account (None for a withdrawal), by transfer id."""
        rows = await self.session.execute(select(Transfer.id, Transfer.destination_account_id))
        return {row.id: row.destination_account_id for row in rows}

    async def jobs_of_kind(self, kind: str) -> Sequence[OutboxJob]:
        """Every job of `kind` with the `transfer_id` of its payload (None if it has none)."""
        transfer_id = Job.payload["transfer_id"].as_integer()
        rows = await self.session.execute(
            select(Job.id, transfer_id, Job.status).where(Job.kind == kind)
        )
        return [OutboxJob(job_id, tid, str(status)) for job_id, tid, status in rows]

    async def notified_transfers(self) -> Sequence[int]:
        """The transfer id of every notification (one row per notification)."""
        return (await self.session.scalars(select(Notification.transfer_id))).all()
