"""One money movement. Every change of a balance is a Transfer row."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, Entity, UTCDateTime, utcnow

IDEMPOTENCY_KEY_MAX_LENGTH = 128
IDEMPOTENCY_SCOPE_MAX_LENGTH = 64
DESCRIPTION_MAX_LENGTH = 500


class Transfer(Entity):
    """A movement of `amount` from `source` to `destination`.

    A NULL source is a deposit (money entering the ledger), a NULL destination a
    withdrawal; so every balance can be recomputed from history. Rows are immutable.
    """

    __tablename__ = "transfers"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "source_account_id IS NOT NULL OR destination_account_id IS NOT NULL",
            name="has_an_account",
        ),
        CheckConstraint(
            "source_account_id IS NULL OR destination_account_id IS NULL "
            "OR source_account_id <> destination_account_id",
            name="distinct_accounts",
        ),
        # A key belongs to the caller that chose it (services/callers.py): the same key in
        # two scopes is two requests. A key always has a scope, so NULL never hides one.
        UniqueConstraint("idempotency_scope", "idempotency_key"),
        CheckConstraint(
            "(idempotency_key IS NULL) = (idempotency_scope IS NULL)", name="key_has_scope"
        ),
        # Keyset pagination of an account's history walks these (account, id) pairs.
        Index("ix_transfers_source_history", "source_account_id", "id"),
        Index("ix_transfers_destination_history", "destination_account_id", "id"),
    )

    source_account_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("accounts.id", ondelete="RESTRICT")
    )
    destination_account_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("accounts.id", ondelete="RESTRICT")
    )
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # Unique within its scope when present; NULLs never collide on either engine.
    idempotency_scope: Mapped[str | None] = mapped_column(String(IDEMPOTENCY_SCOPE_MAX_LENGTH))
    idempotency_key: Mapped[str | None] = mapped_column(String(IDEMPOTENCY_KEY_MAX_LENGTH))
    description: Mapped[str | None] = mapped_column(String(DESCRIPTION_MAX_LENGTH))
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=func.current_timestamp()
    )

    def __repr__(self) -> str:
        return (
            f"Transfer(id={self.id!r}, {self.source_account_id!r} -> "
            f"{self.destination_account_id!r}, amount={self.amount!r})"
        )
