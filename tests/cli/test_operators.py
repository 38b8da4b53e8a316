"""`ledgerctl operator add`: an operator and a token that authenticates as it."""

from __future__ import annotations

import json

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import DatabaseSettings
from services import AccessService, Caller
from tests.support.cli_runs import ledgerctl


async def test_operator_add_prints_a_token_of_an_operator(
    settings: DatabaseSettings, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    done = await ledgerctl(
        "--database-url", settings.url, "operator", "add", "ops@example.com", "Ops", "--json"
    )
    assert done.code == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["user"]["role"] == "operator"
    found = await AccessService(sessions).authenticate(shown["token"])
    assert found.caller == Caller.operator(shown["user"]["id"])


async def test_token_only_prints_just_the_token(
    settings: DatabaseSettings, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    done = await ledgerctl(
        "--database-url", settings.url, "operator", "add", "o@example.com", "O", "--token-only"
    )
    assert done.code == 0, done.stderr
    (token,) = done.stdout.split()
    assert (await AccessService(sessions).authenticate(token)).user.role == "operator"


async def test_a_taken_email_is_a_one_line_error(
    settings: DatabaseSettings, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    args = ("--database-url", settings.url, "operator", "add", "o@example.com", "O")
    assert (await ledgerctl(*args)).code == 0
    assert "already exists" in (await ledgerctl(*args)).one_line_error()
