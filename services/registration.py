"""The one registration use case, behind `UserService.register` (a user) and
`AccessService.register` (a user with an API token)."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models import ApiToken, User
from repositories import TokenRepository, UserRepository
from services import validation
from services.callers import Caller, Role
from services.errors import DuplicateEmail, InvalidInput, NotAllowed
from services.results import UserRecord
from services.transactions import Sessions, run_in_transaction


async def register_user(
    sessions: Sessions,
    caller: Caller,
    email: str,
    name: str,
    *,
    role: Role = Role.USER,
    token_hash: str | None = None,
    timeout: float | None = None,  # noqa: ASYNC109 (raises OperationTimeout)
) -> UserRecord:
    """Create a user (and, with `token_hash`, its API token) in one transaction.

    The email is trimmed and lower-cased; a taken one is DuplicateEmail, decided by the
    unique index, so two concurrent registrations cannot both win. Only trusted code
    creates operators.
    """
    normalised = validation.email(email)
    display_name = validation.name(name)
    if not isinstance(role, Role):
        raise InvalidInput(f"role must be a Role, got {type(role).__name__}")
    if role is not Role.USER and not caller.is_trusted:
        raise NotAllowed("operators are created by `ledgerctl operator add`, not over the API")

    async def work(session: AsyncSession) -> UserRecord:
        user = await UserRepository(session).add(
            User(email=normalised, name=display_name, role=role.value)
        )
        if token_hash is not None:
            await TokenRepository(session).add(ApiToken(user_id=user.id, token_hash=token_hash))
        return UserRecord.of(user)

    try:
        return await run_in_transaction(sessions, work, timeout=timeout)
    except IntegrityError as exc:
        raise DuplicateEmail(normalised) from exc
