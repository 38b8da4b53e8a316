"""The transactional outbox: jobs and events written in the same transaction as the change
they report.

A job enqueued after the commit is lost if the process dies in between; one enqueued
before it announces a change that may yet roll back. Inserted inside the transaction,
the job exists exactly when the change does. The same holds for the events other services
hear of (`outbox_events`, published to the broker by services/relay.py).
"""

from __future__ import annotations

from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from db.wakeups import OUTBOX_CHANNEL, wake_after_commit
from repositories import PerIdJobs

TRANSFER_COMPLETED: Final = "transfer.completed"
TRANSFER_COMPLETED_EVENT: Final = "ledger.transfer.completed"
"""The CloudEvents `type` of the event every committed transfer publishes."""
OUTBOX_MAX_ATTEMPTS: Final = 5

TRANSFERS_COMPLETED: Final = PerIdJobs(TRANSFER_COMPLETED, "transfer_id", OUTBOX_MAX_ATTEMPTS)
"""One `transfer.completed` job per new transfer, written with the transfers (see
`TransferRepository.insert_and_apply`, which on PostgreSQL also sends their NOTIFY)."""


def enqueued(session: AsyncSession) -> None:
    """Jobs and events were written in `session`'s transaction: wake this process's idle
    workers and relay when it commits, as `JobQueue.enqueue_many` does."""
    wake_after_commit(session)
    wake_after_commit(session, OUTBOX_CHANNEL)
