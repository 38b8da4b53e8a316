"""Use cases for operators only: the audit and the job statistics."""

from __future__ import annotations

from services.auditor import LedgerAuditor
from services.callers import SYSTEM, Caller
from services.jobs import JobQueue
from services.results import AuditReport, JobStats
from services.transactions import Sessions, deadline


class BackOffice:
    """What only an operator (or the trusted SYSTEM) may read; NotAllowed for a user."""

    def __init__(self, sessions: Sessions, *, caller: Caller = SYSTEM) -> None:
        self._sessions = sessions
        self._caller = caller

    async def audit(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (raises OperationTimeout)
    ) -> AuditReport:
        """The auditor's verdict on the whole ledger."""
        self._caller.require_back_office("read the audit")
        async with deadline(timeout):
            return await LedgerAuditor(self._sessions).verify()

    async def job_stats(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (raises OperationTimeout)
    ) -> JobStats:
        """The job queue by status."""
        self._caller.require_back_office("read the job statistics")
        async with deadline(timeout):
            return await JobQueue(self._sessions).stats()
