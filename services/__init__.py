"""The public API: use cases that own their transactions.

from services import UserService, AccountService, TransferService, LedgerAuditor
"""

from services.accounts import AccountService
from services.auditor import LedgerAuditor
from services.batcher import BatcherClosed, TransferBatcher
from services.dashboard import DashboardService
from services.job_handler import JobHandler
from services.jobs import ClaimedJob, JobQueue, JobRecord, JobStats, RetryPolicy
from services.notifications import TransferNotifier, ledger_handlers
from services.outbox import TRANSFER_COMPLETED
from services.results import (
    AccountRecord,
    AuditReport,
    Counterparty,
    CurrencySummary,
    Dashboard,
    HistoryPage,
    NotificationRecord,
    Result,
    TransferRecord,
    UserRecord,
)
from services.schema import ensure_migrated
from services.transfer_core import Outcome, TransferRequest
from services.transfers import TransferService
from services.users import UserService
from services.worker import Worker, WorkerEvent, WorkerStats

__all__ = [
    "TRANSFER_COMPLETED",
    "AccountRecord",
    "AccountService",
    "AuditReport",
    "BatcherClosed",
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
    "Result",
    "RetryPolicy",
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
    "ensure_migrated",
    "ledger_handlers",
]
