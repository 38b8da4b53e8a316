"""Use cases for operators only: the audit and the job statistics."""

from __future__ import annotations

from services.auditor import LedgerAuditor
from services.base import Service
from services.jobs import JobQueue
from services.results import AuditReport, JobStats
from services.transactions import deadline


class BackOffice(Service):
    """What only an operator (or the trusted SYSTEM) may read; NotAllowed for a user."""

    async def audit(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (raises OperationTimeout)
    ) -> AuditReport:
        """The auditor's verdict on the whole ledger."""
        self._caller.require_back_office("read the audit")
        async with deadline(self._deadline(timeout)):
            return await LedgerAuditor(self._sessions).verify()

    async def job_stats(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (raises OperationTimeout)
    ) -> JobStats:
        """The job queue by status."""
        self._caller.require_back_office("read the job statistics")
        async with deadline(self._deadline(timeout)):
            return await JobQueue(self._sessions).stats()
