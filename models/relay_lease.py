"""Which relay may publish the outbox now: one row per outbox, leased like a job."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime

OWNER_MAX_LENGTH = 200


class RelayLease(Base):
    """The relay `owner` publishes the outbox `name` until `expires_at`, and renews it.

    One publisher at a time is what keeps events in order: a second relay waits for the
    lease to be released or to expire, then takes over from the first pending event.
    """

    __tablename__ = "relay_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(OWNER_MAX_LENGTH))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"RelayLease(name={self.name!r}, owner={self.owner!r})"
