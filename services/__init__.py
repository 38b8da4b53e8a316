"""The public API: use cases that own their transactions.

from services import UserService, AccountService, TransferService, LedgerAuditor
"""

from services.accounts import AccountService
from services.auditor import LedgerAuditor
from services.batcher import BatcherClosed, TransferBatcher
from services.results import AccountRecord, AuditReport, HistoryPage, TransferRecord, UserRecord
from services.transfer_core import Outcome, TransferRequest
from services.transfers import TransferService
from services.users import UserService

__all__ = [
    "AccountRecord",
    "AccountService",
    "AuditReport",
    "BatcherClosed",
    "HistoryPage",
    "LedgerAuditor",
    "Outcome",
    "TransferBatcher",
    "TransferRecord",
    "TransferRequest",
    "TransferService",
    "UserRecord",
    "UserService",
]
