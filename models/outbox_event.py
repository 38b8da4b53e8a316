"""An event for other services, written in the transaction of the change it reports."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Entity, UTCDateTime, utcnow

EVENT_TYPE_MAX_LENGTH = 100
# The rows a relay may publish: the predicate of the partial index ix_outbox_events_pending.
PENDING_SQL = "status = 'pending'"
FAILED_SQL = "status = 'failed'"


class OutboxStatus(StrEnum):
    """pending -> sent once the broker confirmed it, or failed when it cannot be encoded."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class OutboxEvent(Entity):
    """One event: its `type` (``ledger.transfer.completed``) and its `data` (a JSON object).

    Its id is the CloudEvents `id`. Ids are handed out after the transaction holds the
    locks of the accounts it changes (repositories/outbox_events.py), so the events of any
    one account have ascending ids in the order their transactions committed.
    """

    __tablename__ = "outbox_events"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status_known"),
        # The relay walks this index in id order and stops after its batch; sent events,
        # which pile up, are not in it, so a claim costs the same however long the history.
        Index(
            "ix_outbox_events_pending",
            "id",
            postgresql_where=text(PENDING_SQL),
            sqlite_where=text(PENDING_SQL),
        ),
        Index(
            "ix_outbox_events_failed",
            "id",
            postgresql_where=text(FAILED_SQL),
            sqlite_where=text(FAILED_SQL),
        ),
    )

    type: Mapped[str] = mapped_column(String(EVENT_TYPE_MAX_LENGTH))
    data: Mapped[Any] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(
        String(16), default=OutboxStatus.PENDING, server_default=OutboxStatus.PENDING.value
    )
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=func.current_timestamp()
    )
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)

    def __repr__(self) -> str:
        return f"OutboxEvent(id={self.id!r}, type={self.type!r}, status={self.status!r})"
