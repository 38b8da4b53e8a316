"""Immutable results returned by the services.

Services return these frozen dataclasses, never ORM objects: they are safe to keep after
the session has closed, to share between tasks and to serialise, and they cannot
trigger lazy loads (hidden IO) when a caller touches an attribute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from models import Account, Transfer, User
from repositories import NewTransfer

TransferKind = Literal["deposit", "withdrawal", "transfer"]


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A registered user; `role` is "user" or "operator" (services/callers.py)."""

    id: int
    email: str
    name: str
    created_at: datetime
    role: str = "user"

    @classmethod
    def of(cls, user: User) -> UserRecord:
        """Copy the loaded columns of a User."""
        return cls(
            id=user.id, email=user.email, name=user.name, created_at=user.created_at, role=user.role
        )


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """An account and its balance at the time it was read."""

    id: int
    owner_id: int
    currency: str
    balance: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, account: Account) -> AccountRecord:
        """Copy the loaded columns of an Account."""
        return cls(
            id=account.id,
            owner_id=account.owner_id,
            currency=account.currency,
            balance=account.balance,
            created_at=account.created_at,
            updated_at=account.updated_at,
        )


@dataclass(frozen=True, slots=True)
class TransferRecord:
    """A committed money movement.

    `replayed` is True when this request repeated an earlier one with its idempotency
    key and got the original back; it is not part of equality, so the replay and the
    original compare equal.
    """

    id: int
    source_account_id: int | None
    destination_account_id: int | None
    amount: int
    currency: str
    idempotency_key: str | None
    description: str | None
    created_at: datetime
    replayed: bool = field(default=False, compare=False)

    @property
    def kind(self) -> TransferKind:
        """deposit (no source), withdrawal (no destination) or transfer."""
        if self.source_account_id is None:
            return "deposit"
        if self.destination_account_id is None:
            return "withdrawal"
        return "transfer"

    @classmethod
    def of(cls, transfer: Transfer, *, replayed: bool = False) -> TransferRecord:
        """Copy the loaded columns of a Transfer."""
        return cls(
            id=transfer.id,
            source_account_id=transfer.source_account_id,
            destination_account_id=transfer.destination_account_id,
            amount=transfer.amount,
            currency=transfer.currency,
            idempotency_key=transfer.idempotency_key,
            description=transfer.description,
            created_at=transfer.created_at,
            replayed=replayed,
        )

    @classmethod
    def of_new(cls, transfer_id: int, row: NewTransfer, created_at: datetime) -> TransferRecord:
        """The record of a row just inserted."""
        return cls(
            id=transfer_id,
            source_account_id=row.source_account_id,
            destination_account_id=row.destination_account_id,
            amount=row.amount,
            currency=row.currency,
            idempotency_key=row.idempotency_key,
            description=row.description,
            created_at=created_at,
        )


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of an account's history, newest first.

    Pass `next_before` as `before` to get the next (older) page; it is None on the last one.
    """

    account_id: int
    items: tuple[TransferRecord, ...]
    next_before: int | None


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The auditor's verdict: `ok` when `problems` is empty."""

    accounts_checked: int
    deposits: int
    withdrawals: int
    balances_total: int
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return not self.problems
