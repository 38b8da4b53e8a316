"""The example consumer's effect: a per-account statement, built from the ledger's events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Entity, UTCDateTime, utcnow


class StatementLine(Entity):
    """One leg of a transfer as an account's statement shows it: `amount` signed (money in
    positive), and the account's `balance` after it, as this read model computed it.

    A read model of another service: no foreign keys into the ledger's tables, whose
    database it need not share. Lines of an account are in the order they were applied,
    which is the order of `id`.
    """

    __tablename__ = "statement_lines"
    __table_args__ = (Index("ix_statement_lines_account", "account_id", "id"),)

    account_id: Mapped[int] = mapped_column(BigInteger)
    transfer_id: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger)
    balance: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=func.current_timestamp()
    )

    def __repr__(self) -> str:
        return (
            f"StatementLine(account_id={self.account_id!r}, transfer_id={self.transfer_id!r}, "
            f"amount={self.amount!r})"
        )
