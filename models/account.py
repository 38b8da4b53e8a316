"""An account holding money in one currency, in integer minor units."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import BigId, Entity, TimestampMixin

if TYPE_CHECKING:
    from models.user import User


class Account(TimestampMixin, Entity):
    """An account. `balance` is in minor units (cents) and can never go below zero."""

    __tablename__ = "accounts"
    __table_args__ = (
        # The last line of defence: even a buggy code path cannot commit a negative balance.
        CheckConstraint("balance >= 0", name="balance_non_negative"),
        CheckConstraint("length(currency) = 3", name="currency_code"),
    )

    owner_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    currency: Mapped[str] = mapped_column(String(3))
    balance: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # The account's history kept as totals, moved by the same UPDATE as the balance, so a
    # summary reads a few rows however long the history is. A total may pass 64 bits (a
    # balance alone may reach 2**63 - 1), so each is kept as high and low 32-bit halves,
    # `total = high * 2**32 + low`, as repositories/exact_sums.py sums them; the write
    # path keeps 0 <= low < 2**32 (repositories/accounts.Movement). `movements` counts the
    # transfers into or out of the account.
    received_high: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    received_low: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    sent_high: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    sent_low: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    movements: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    owner: Mapped[User] = relationship(back_populates="accounts", lazy="raise")

    def __repr__(self) -> str:
        return f"Account(id={self.id!r}, currency={self.currency!r}, balance={self.balance!r})"
