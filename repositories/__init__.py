"""Repositories over AsyncSession: they add, flush and query; services own the transactions."""

from repositories.accounts import AccountRepository, LockedAccount
from repositories.base import Repository
from repositories.transfers import AccountFlow, LedgerTotals, NewTransfer, TransferRepository
from repositories.users import UserRepository

__all__ = [
    "AccountFlow",
    "AccountRepository",
    "LedgerTotals",
    "LockedAccount",
    "NewTransfer",
    "Repository",
    "TransferRepository",
    "UserRepository",
]
