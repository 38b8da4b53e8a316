"""Use case: prove the outbox delivered every transfer exactly once.

Every committed transfer must have exactly one `transfer.completed` job (the outbox
writes it in the transfer's own transaction), and every such job that is done must have
had its effect exactly once: one notification for a transfer with a receiving account,
none for a withdrawal. Read in one read-only snapshot, so it can run beside a worker.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy.ext.asyncio import AsyncSession

from models import JobStatus
from repositories import OutboxAuditRepository
from services.outbox import TRANSFER_COMPLETED
from services.results import OutboxReport
from services.transactions import Sessions, run_in_transaction

MAX_PROBLEMS = 50


class OutboxAuditor:
    """Checks that transfers, their outbox jobs and the jobs' effects match one to one."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def verify(self) -> OutboxReport:
        """Run every check in one snapshot; the report lists each problem found."""

        async def work(session: AsyncSession) -> OutboxReport:
            repo = OutboxAuditRepository(session)
            destinations = await repo.transfer_destinations()
            jobs = await repo.jobs_of_kind(TRANSFER_COMPLETED)
            notified = Counter(await repo.notified_transfers())
            problems: list[str] = []
            jobs_per_transfer = Counter(job.transfer_id for job in jobs)
            for transfer_id in destinations:
                if (count := jobs_per_transfer[transfer_id]) != 1:
                    problems.append(f"transfer {transfer_id} has {count} {TRANSFER_COMPLETED} jobs")
            for job in jobs:
                if job.transfer_id not in destinations:
                    problems.append(f"job {job.job_id} names no existing transfer")
                elif job.status == JobStatus.DONE:
                    wanted = 0 if destinations[job.transfer_id] is None else 1
                    if (count := notified[job.transfer_id]) != wanted:
                        problems.append(
                            f"job {job.job_id} is done but transfer {job.transfer_id} has "
                            f"{count} notifications, not {wanted}"
                        )
            return OutboxReport(
                transfers=len(destinations),
                jobs=len(jobs),
                jobs_by_status=dict(Counter(job.status for job in jobs)),
                notifications=sum(notified.values()),
                problems=tuple(problems[:MAX_PROBLEMS]),
            )

        return await run_in_transaction(self._sessions, work, read_only=True)
