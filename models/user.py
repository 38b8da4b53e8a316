"""A person who owns accounts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Entity, TimestampMixin

if TYPE_CHECKING:
    from models.account import Account

EMAIL_MAX_LENGTH = 320
NAME_MAX_LENGTH = 200


class User(TimestampMixin, Entity):
    """A user; `email` is stored normalised (trimmed, lower-case) and unique."""

    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH), unique=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH))

    # lazy="raise": touching `user.accounts` without a loader option raises at once
    # instead of issuing a hidden query, which in async code would fail obscurely.
    accounts: Mapped[list[Account]] = relationship(back_populates="owner", lazy="raise")

    def __repr__(self) -> str:
        return f"User(id={self.id!r}, email={self.email!r})"
