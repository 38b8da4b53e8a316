"""A person who owns accounts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Entity, TimestampMixin

if TYPE_CHECKING:
    from models.account import Account

EMAIL_MAX_LENGTH = 320
NAME_MAX_LENGTH = 200
ROLES = ("user", "operator")


class User(TimestampMixin, Entity):
    """A user; `email` is stored normalised (trimmed, lower-case) and unique."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('user', 'operator')", name="role_known"),)

    email: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH), unique=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH))
    # What the user may do (services/callers.py): an operator is the back office.
    role: Mapped[str] = mapped_column(String(16), default="user", server_default="user")

    # lazy="raise": touching `user.accounts` without a loader option raises at once
    # instead of issuing a hidden query, which in async code would fail obscurely.
    accounts: Mapped[list[Account]] = relationship(back_populates="owner", lazy="raise")

    def __repr__(self) -> str:
        return f"User(id={self.id!r}, email={self.email!r})"
