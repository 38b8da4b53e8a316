"""Queries over users."""

from __future__ import annotations

from sqlalchemy import select

from models import User
from repositories.base import Repository


class UserRepository(Repository[User]):
    """Users by id and by (normalised) email."""

    model = User

    async def get_by_email(self, email: str) -> User | None:
        """The user with exactly this stored email, or None."""
        return await self.session.scalar(select(User).where(User.email == email))
