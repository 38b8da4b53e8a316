"""An API token: only its SHA-256 hash is stored, so a leaked table reveals no token."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, func
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, Entity, UTCDateTime, utcnow

TOKEN_HASH_LENGTH = 64  # hex SHA-256


class ApiToken(Entity):
    """A bearer token of one user, valid until `revoked_at` is set."""

    __tablename__ = "api_tokens"

    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(TOKEN_HASH_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=func.current_timestamp()
    )
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        # Never the hash: it identifies the token in logs just as well as the token.
        return f"ApiToken(id={self.id!r}, user_id={self.user_id!r})"
