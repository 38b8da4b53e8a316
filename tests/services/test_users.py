"""UserService: registration with normalised, unique emails."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import UserService
from services.errors import DuplicateEmail, InvalidEmail, InvalidText, UserNotFound
from tests.support.ledger import snapshot


async def test_register_normalises_the_email(sessions: async_sessionmaker[AsyncSession]) -> None:
    user = await UserService(sessions).register("  Ada@Example.COM ", "Ada Lovelace")
    assert user.email == "ada@example.com"
    assert user.name == "Ada Lovelace"
    assert await UserService(sessions).get(user.id) == user


async def test_the_same_address_in_another_case_is_a_duplicate(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    users = UserService(sessions)
    await users.register("ada@example.com", "Ada")
    before = await snapshot(sessions)
    with pytest.raises(DuplicateEmail):
        await users.register("ADA@example.com", "Other Ada")
    assert await snapshot(sessions) == before


async def test_concurrent_registrations_of_one_email_create_exactly_one_user(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    users = UserService(sessions)
    results = await asyncio.gather(
        *(users.register("race@example.com", f"Racer {i}") for i in range(10)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, DuplicateEmail) for r in results if isinstance(r, BaseException))
    assert (await snapshot(sessions)).users == 1


@pytest.mark.parametrize(
    "email", ["", "   ", "no-at-sign", "@example.com", "ada@", "ada@localhost", "a b@example.com"]
)
async def test_malformed_emails_are_refused(
    sessions: async_sessionmaker[AsyncSession], email: str
) -> None:
    with pytest.raises(InvalidEmail):
        await UserService(sessions).register(email, "Name")
    assert (await snapshot(sessions)).users == 0


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, "bad\x00name"])
async def test_bad_names_are_refused(sessions: async_sessionmaker[AsyncSession], name: str) -> None:
    with pytest.raises(InvalidText):
        await UserService(sessions).register("ok@example.com", name)
    assert (await snapshot(sessions)).users == 0


async def test_get_of_an_unknown_user_raises_user_not_found(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(UserNotFound):
        await UserService(sessions).get(12345)
