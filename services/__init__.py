"""The public API: use cases that own their transactions.

from services import UserService, AccountService, TransferService, LedgerAuditor
"""

from services.access import AccessService, Authenticated, Registration
from services.accounts import AccountService
from services.auditor import LedgerAuditor
from services.back_office import BackOffice
from services.batcher import BatcherClosed, TransferBatcher
from services.callers import ANONYMOUS, SYSTEM, Caller, Role
from services.dashboard import Counterparty, CurrencySummary, Dashboard, DashboardService
from services.jobs import ClaimedJob, JobQueue, JobRecord, JobStats, RetryPolicy
from services.notifications import NotificationRecord, TransferNotifier, ledger_handlers
from services.outbox import TRANSFER_COMPLETED
from services.results import AccountRecord, AuditReport, HistoryPage, TransferRecord, UserRecord
from services.transfer_core import Outcome, TransferRequest
from services.transfers import TransferService
from services.users import UserService
from services.worker import JobHandler, Worker, WorkerEvent, WorkerStats

__all__ = [
    "ANONYMOUS",
    "SYSTEM",
    "TRANSFER_COMPLETED",
    "AccessService",
    "AccountRecord",
    "AccountService",
    "AuditReport",
    "Authenticated",
    "BackOffice",
    "BatcherClosed",
    "Caller",
    "ClaimedJob",
    "Counterparty",
    "CurrencySummary",
    "Dashboard",
    "DashboardService",
    "HistoryPage",
    "JobHandler",
    "JobQueue",
    "JobRecord",
    "JobStats",
    "LedgerAuditor",
    "NotificationRecord",
    "Outcome",
    "Registration",
    "RetryPolicy",
    "Role",
    "TransferBatcher",
    "TransferNotifier",
    "TransferRecord",
    "TransferRequest",
    "TransferService",
    "UserRecord",
    "UserService",
    "Worker",
    "WorkerEvent",
    "WorkerStats",
    "ledger_handlers",
]
