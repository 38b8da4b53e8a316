"""Declarative models. Importing this package registers every table on `Base.metadata`."""

from models.account import Account
from models.base import Base, Entity, TimestampMixin, UTCDateTime, utcnow
from models.job import Job, JobStatus
from models.notification import Notification
from models.token import ApiToken
from models.transfer import Transfer
from models.user import User

__all__ = [
    "Account",
    "ApiToken",
    "Base",
    "Entity",
    "Job",
    "JobStatus",
    "Notification",
    "TimestampMixin",
    "Transfer",
    "UTCDateTime",
    "User",
    "utcnow",
]
