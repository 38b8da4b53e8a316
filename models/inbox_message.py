"""What a consumer has handled: one row per (consumer, message id), written with the effect."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, func
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow

CONSUMER_MAX_LENGTH = 100
MESSAGE_ID_MAX_LENGTH = 200


class InboxMessage(Base):
    """Consumer `consumer` applied message `message_id` (a CloudEvents id).

    The primary key is the idempotency check: a redelivered or duplicated message finds
    its row and its effect is not applied again.
    """

    __tablename__ = "inbox_messages"

    consumer: Mapped[str] = mapped_column(String(CONSUMER_MAX_LENGTH), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(MESSAGE_ID_MAX_LENGTH), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=func.current_timestamp()
    )

    def __repr__(self) -> str:
        return f"InboxMessage(consumer={self.consumer!r}, message_id={self.message_id!r})"
