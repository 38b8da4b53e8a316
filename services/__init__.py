"""The public API: use cases that own their transactions.

from services import UserService, AccountService, TransferService, LedgerAuditor
"""

from typing import Any

from services.access import AccessService
from services.accounts import AccountService
from services.auditor import LedgerAuditor
from services.back_office import BackOffice
from services.backoff import Backoff
from services.batcher import TransferBatcher
from services.callers import ANONYMOUS, SYSTEM, Caller, Role
from services.cloud_events import CloudEvent
from services.dashboard import DashboardService
from services.errors import BatcherClosed
from services.event_handler import EventHandler
from services.event_outbox import EventOutbox
from services.job_handler import JobHandler
from services.jobs import JobQueue
from services.notifications import TransferNotifier, ledger_handlers
from services.outbox import TRANSFER_COMPLETED, TRANSFER_COMPLETED_EVENT
from services.outbox_audit import OutboxAuditor
from services.results import (
    AccountRecord,
    AuditReport,
    Authenticated,
    ClaimedJob,
    ConsumerStats,
    Counterparty,
    CurrencySummary,
    Dashboard,
    FailedEventRecord,
    HistoryPage,
    JobRecord,
    JobStats,
    NotificationRecord,
    OutboxReport,
    OutboxState,
    Registration,
    RelayStats,
    Result,
    StatementLineRecord,
    TransferRecord,
    UserRecord,
    WorkerStats,
)
from services.schema import ensure_migrated
from services.statements import STATEMENTS, StatementService, statement_handler
from services.token_cache import TokenCache
from services.transfer_core import Outcome, TransferRequest
from services.transfers import TransferService
from services.users import UserService
from services.worker import Worker, WorkerEvent, drain

# Imported on first use: they need aio-pika (the `events` extra), which the rest does not.
_NEEDS_BROKER_CLIENT = {
    "EventConsumer": "services.consumer",
    "OutboxRelay": "services.relay",
    "Topology": "db.broker",
}


def __getattr__(name: str) -> Any:
    module = _NEEDS_BROKER_CLIENT.get(name)
    if module is None:
        raise AttributeError(f"module 'services' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module), name)


__all__ = [
    "ANONYMOUS",
    "STATEMENTS",
    "SYSTEM",
    "TRANSFER_COMPLETED",
    "TRANSFER_COMPLETED_EVENT",
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
    "CloudEvent",
    "ConsumerStats",
    "Counterparty",
    "CurrencySummary",
    "Dashboard",
    "DashboardService",
    "EventConsumer",
    "EventHandler",
    "EventOutbox",
    "FailedEventRecord",
    "HistoryPage",
    "JobHandler",
    "JobQueue",
    "JobRecord",
    "JobStats",
    "LedgerAuditor",
    "NotificationRecord",
    "OutboxAuditor",
    "OutboxRelay",
    "OutboxReport",
    "OutboxState",
    "Outcome",
    "Registration",
    "RelayStats",
    "Result",
    "Role",
    "StatementLineRecord",
    "StatementService",
    "TokenCache",
    "Topology",
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
    "statement_handler",
]
