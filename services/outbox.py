"""The transactional outbox: jobs written in the same transaction as the change they report.

A job enqueued after the commit is lost if the process dies in between; one enqueued
before it announces a change that may yet roll back. Inserted inside the transaction,
the job exists exactly when the change does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from services.jobs import JobQueue

TRANSFER_COMPLETED: Final = "transfer.completed"
OUTBOX_MAX_ATTEMPTS: Final = 5


async def transfers_completed(session: AsyncSession, transfer_ids: Sequence[int]) -> None:
    """Enqueue one `transfer.completed` job per new transfer, in one INSERT; idle workers
    are woken when the transfers commit."""
    if not transfer_ids:
        return
    await JobQueue.joining(session).enqueue_many(
        [(TRANSFER_COMPLETED, {"transfer_id": transfer_id}) for transfer_id in transfer_ids],
        max_attempts=OUTBOX_MAX_ATTEMPTS,
        session=session,
    )
