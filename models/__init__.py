"""Declarative models. Importing this package registers every table on `Base.metadata`."""

from models.account import Account
from models.base import Base, Entity, TimestampMixin, UTCDateTime, utcnow
from models.inbox_message import InboxMessage
from models.job import Job, JobStatus
from models.notification import Notification
from models.outbox_event import OutboxEvent, OutboxStatus
from models.relay_lease import RelayLease
from models.statement_line import StatementLine
from models.token import ApiToken
from models.transfer import Transfer
from models.user import User

__all__ = [
    "Account",
    "ApiToken",
    "Base",
    "Entity",
    "InboxMessage",
    "Job",
    "JobStatus",
    "Notification",
    "OutboxEvent",
    "OutboxStatus",
    "RelayLease",
    "StatementLine",
    "TimestampMixin",
    "Transfer",
    "UTCDateTime",
    "User",
    "utcnow",
]
