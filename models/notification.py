"""A message for a user about something that happened to their money."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, func
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, Entity, UTCDateTime, utcnow

MESSAGE_MAX_LENGTH = 500


class Notification(Entity):
    """A notification about one transfer, for the owner of the account that received it.

    `transfer_id` is unique: the job that writes notifications may run more than once
    (a retry, or a worker whose lease expired), and the constraint makes the second
    write a no-op instead of a duplicate.
    """

    __tablename__ = "notifications"

    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    transfer_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("transfers.id", ondelete="RESTRICT"), unique=True
    )
    message: Mapped[str] = mapped_column(String(MESSAGE_MAX_LENGTH))
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=func.current_timestamp()
    )

    def __repr__(self) -> str:
        return (
            f"Notification(id={self.id!r}, user_id={self.user_id!r}, transfer={self.transfer_id!r})"
        )
