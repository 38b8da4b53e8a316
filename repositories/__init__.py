"""Repositories over AsyncSession: they add, flush and query; services own the transactions."""

from repositories.accounts import AccountRepository, LockedAccount, Movement, account_row
from repositories.activity import ActivityRepository
from repositories.base import Repository
from repositories.inbox import InboxRepository
from repositories.jobs import JobLease, JobRepository, NewJob, PerIdJobs, StatusCounts
from repositories.notifications import NotificationRepository, Receipt
from repositories.outbox_audit import OutboxAuditRepository, OutboxJob
from repositories.outbox_events import OutboxEventRepository, PendingEvent, RelayLeaseRepository
from repositories.statements import StatementRepository
from repositories.tokens import TokenRepository, live_token_row
from repositories.transfers import KeptTotals, LegSum, NewTransfer, TransferRepository
from repositories.users import UserRepository

__all__ = [
    "AccountRepository",
    "ActivityRepository",
    "InboxRepository",
    "JobLease",
    "JobRepository",
    "KeptTotals",
    "LegSum",
    "LockedAccount",
    "Movement",
    "NewJob",
    "NewTransfer",
    "NotificationRepository",
    "OutboxAuditRepository",
    "OutboxEventRepository",
    "OutboxJob",
    "PendingEvent",
    "PerIdJobs",
    "Receipt",
    "RelayLeaseRepository",
    "Repository",
    "StatementRepository",
    "StatusCounts",
    "TokenRepository",
    "TransferRepository",
    "UserRepository",
    "account_row",
    "live_token_row",
]
