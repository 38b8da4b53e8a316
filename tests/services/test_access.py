"""API tokens: shown once, stored as a hash, authenticated to their user, revocable."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import ApiToken
from services import SYSTEM, AccessService, Caller, Role
from services.errors import DuplicateEmail, InvalidInput, InvalidToken, NotAllowed
from tests.support.ledger import snapshot


async def test_registering_returns_a_token_that_authenticates_as_the_new_user(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    access = AccessService(sessions)
    made = await access.register("Ada@Example.com", "Ada")
    assert len(made.token) == 43  # 32 random bytes, URL-safe base64
    found = await access.authenticate(made.token)
    assert found.caller == Caller.user(made.user.id)
    assert (found.user.email, found.user.role) == ("ada@example.com", "user")


async def test_only_the_hash_of_a_token_is_stored(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    made = await AccessService(sessions).register("a@example.com", "A")
    async with sessions() as session:
        stored = list(await session.scalars(select(ApiToken.token_hash)))
    assert stored == [hashlib.sha256(made.token.encode()).hexdigest()]


@pytest.mark.parametrize("token", ["", "x", "A" * 43, "A" * 500])
async def test_an_unknown_token_is_refused(
    sessions: async_sessionmaker[AsyncSession], token: str
) -> None:
    await AccessService(sessions).register("a@example.com", "A")
    with pytest.raises(InvalidToken):
        await AccessService(sessions).authenticate(token)


async def test_a_revoked_token_no_longer_authenticates(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    access = AccessService(sessions)
    made = await access.register("a@example.com", "A")
    await access.revoke(made.token)
    with pytest.raises(InvalidToken):
        await access.authenticate(made.token)
    with pytest.raises(InvalidToken):
        await access.revoke(made.token)


async def test_an_operator_is_made_only_by_the_system(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    before = await snapshot(sessions)
    with pytest.raises(NotAllowed):
        await AccessService(sessions).register("o@example.com", "O", role=Role.OPERATOR)
    assert await snapshot(sessions) == before
    made = await AccessService(sessions, caller=SYSTEM).register(
        "o@example.com", "O", role=Role.OPERATOR
    )
    found = await AccessService(sessions).authenticate(made.token)
    assert found.caller == Caller.operator(made.user.id)


async def test_a_taken_email_registers_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await AccessService(sessions).register("a@example.com", "A")
    before = await snapshot(sessions)
    with pytest.raises(DuplicateEmail):
        await AccessService(sessions).register("A@example.com", "Again")
    assert await snapshot(sessions) == before


# For the trusted caller the operator check passes, so only the type check stands between
# a role that is not a Role and `role.value` (an AttributeError).
@pytest.mark.parametrize("role", ["operator", 1, None])
async def test_a_role_that_is_not_a_role_is_invalid_input_and_registers_nothing(
    sessions: async_sessionmaker[AsyncSession], role: object
) -> None:
    before = await snapshot(sessions)
    with pytest.raises(InvalidInput, match="role must be a Role"):
        await AccessService(sessions, caller=SYSTEM).register(
            "op@example.com",
            "Op",
            role=role,  # type: ignore[arg-type]
        )
    assert await snapshot(sessions) == before
