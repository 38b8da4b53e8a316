"""The transfer and the reads as SQLAlchemy Core statements, built once and reused.

Built once with bind parameters, as performance-minded Core code does; SQLAlchemy's
compiled cache then makes each execution a cache lookup rather than a compilation.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import Integer, Select, bindparam, func, insert, literal_column, or_, select, update
from sqlalchemy.sql import Executable

from lab.bench.ops import Op
from lab.bench.sql import HISTORY_PAGE
from models import Account, Transfer

DEBIT: Final = (
    update(Account)
    .where(Account.id == bindparam("account_id"), Account.balance >= bindparam("amount"))
    .values(
        balance=Account.balance - bindparam("amount"),
        sent_low=Account.sent_low + bindparam("amount"),
        movements=Account.movements + 1,
        updated_at=func.current_timestamp(),
    )
)
CREDIT: Final = (
    update(Account)
    .where(Account.id == bindparam("account_id"))
    .values(
        balance=Account.balance + bindparam("amount"),
        received_low=Account.received_low + bindparam("amount"),
        movements=Account.movements + 1,
        updated_at=func.current_timestamp(),
    )
)
RECORD: Final = insert(Transfer)
POINT: Final = select(Account.balance).where(Account.id == bindparam("account_id"))
ACCOUNT: Final = select(
    Account.id,
    Account.owner_id,
    Account.currency,
    Account.balance,
    Account.created_at,
    Account.updated_at,
).where(Account.id == bindparam("account_id"))
HISTORY: Final = (
    select(
        Transfer.id,
        Transfer.source_account_id,
        Transfer.destination_account_id,
        Transfer.amount,
        Transfer.currency,
        Transfer.idempotency_key,
        Transfer.description,
        Transfer.created_at,
    )
    .where(
        or_(
            Transfer.source_account_id == bindparam("account_id"),
            Transfer.destination_account_id == bindparam("account_id"),
        )
    )
    .order_by(Transfer.id.desc())
    .limit(HISTORY_PAGE + 1)
)
SLEEP: Final = select(func.pg_sleep(bindparam("seconds")))
SELECT_ONE: Final[Select[int]] = select(literal_column("1", Integer))


def legs(op: Op) -> list[tuple[Executable, dict[str, Any]]]:
    """Debit and credit in account-id order (see bench.sql.Statements.legs)."""
    debit = (DEBIT, {"account_id": op.account, "amount": op.amount})
    credit = (CREDIT, {"account_id": op.other, "amount": op.amount})
    return [debit, credit] if op.account < op.other else [credit, debit]


def record_params(op: Op) -> dict[str, Any]:
    """The `transfers` row."""
    return {
        "source_account_id": op.account,
        "destination_account_id": op.other,
        "amount": op.amount,
        "currency": "EUR",
    }
