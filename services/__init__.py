"""The public API: use cases that own their transactions.

from services import UserService, AccountService, TransferService, LedgerAuditor
"""

from services.access import AccessService
from services.accounts import AccountService
from services.auditor import LedgerAuditor
from services.back_office import BackOffice
from services.backoff import Backoff
from services.batcher import TransferBatcher
from services.callers import ANONYMOUS, SYSTEM, Caller, Role
from services.dashboard import DashboardService
from services.errors import BatcherClosed
from services.job_handler import JobHandler
from services.jobs import JobQueue
from services.notifications import TransferNotifier, ledger_handlers
from services.outbox import TRANSFER_COMPLETED
from services.outbox_audit import OutboxAuditor
from services.results import (
    AccountRecord,
    AuditReport,
    Authenticated,
    ClaimedJob,
    Counterparty,
    CurrencySummary,
    Dashboard,
    HistoryPage,
    JobRecord,
    JobStats,
    NotificationRecord,
    OutboxReport,
    Registration,
    Result,
    TransferRecord,
    UserRecord,
    WorkerStats,
)
from services.schema import ensure_migrated
from services.transfer_core import Outcome, TransferRequest
from services.transfers import TransferService
from services.users import UserService
from services.worker import Worker, WorkerEvent, drain

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
    "Backoff",
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
    "OutboxAuditor",
    "OutboxReport",
    "Outcome",
    "Registration",
    "Result",
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
    "drain",
    "ensure_migrated",
    "ledger_handlers",
]
