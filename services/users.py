"""Use cases for users."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from repositories import UserRepository
from services import validation
from services.base import Service
from services.errors import UserNotFound
from services.registration import register_user
from services.results import UserRecord
from services.transactions import run_in_transaction


class UserService(Service):
    """Register and look up users, for one caller (default: the trusted SYSTEM)."""

    async def register(self, email: str, name: str) -> UserRecord:
        """Create a user. The email is trimmed and lower-cased; a taken one is DuplicateEmail
        (services/registration.py)."""
        return await register_user(self._sessions, self._caller, email, name)

    async def get(
        self,
        user_id: int,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (raises OperationTimeout)
    ) -> UserRecord:
        """The user with this id, or UserNotFound (also for another user than the caller)."""
        validation.identifier(user_id, "user id")
        if not self._caller.may_read_user(user_id):
            raise UserNotFound(user_id)

        async def work(session: AsyncSession) -> UserRecord:
            user = await UserRepository(session).get(user_id)
            if user is None:
                raise UserNotFound(user_id)
            return UserRecord.of(user)

        return await run_in_transaction(
            self._sessions, work, read_only=True, timeout=self._deadline(timeout)
        )
