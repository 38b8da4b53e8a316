"""The token cache: a token's lookup is reused for at most the stated bound, and a
revocation clears it at once in the revoking process (both engines) and, through NOTIFY,
in every process on PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from models import utcnow
from repositories import TokenRepository
from services import AccessService, TokenCache
from services.errors import InvalidToken
from services.transactions import run_in_transaction
from tests.support.backends import postgres_direct_only


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _revoke_elsewhere(sessions: async_sessionmaker[AsyncSession], token_id: int) -> None:
    """What another process's revocation looks like here: the row changes (and, on
    PostgreSQL, NOTIFY is sent), but nothing in this process is told."""

    async def work(session: AsyncSession) -> bool:
        return await TokenRepository(session).revoke(token_id, utcnow())

    assert await run_in_transaction(sessions, work)


async def test_a_lookup_is_reused_within_the_bound_and_refused_once_it_has_passed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock()
    access = AccessService(sessions, tokens=TokenCache(1.0, clock=clock))
    made = await access.register("a@example.com", "A")
    found = await access.authenticate(made.token)
    await _revoke_elsewhere(sessions, found.token_id)
    clock.now += 0.5
    assert await access.authenticate(made.token) == found  # within the stated bound
    clock.now += 0.5
    with pytest.raises(InvalidToken):
        await access.authenticate(made.token)


async def test_a_revocation_in_this_process_is_refused_on_the_next_lookup(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    cache = TokenCache(600.0, clock=Clock())
    async with cache.watching(engine):
        access = AccessService(sessions, tokens=cache)
        made = await access.register("a@example.com", "A")
        await access.authenticate(made.token)
        await AccessService(sessions, tokens=TokenCache(600.0)).revoke(made.token)
        with pytest.raises(InvalidToken):
            await access.authenticate(made.token)


@postgres_direct_only
async def test_a_revocation_in_another_process_clears_the_cache_through_notify(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    cache = TokenCache(600.0, clock=Clock())
    async with cache.watching(engine):
        access = AccessService(sessions, tokens=cache)
        made = await access.register("a@example.com", "A")
        # The listener's first connection clears too; wait for it, so that the clear
        # awaited below can only be the revocation's NOTIFY.
        await asyncio.wait_for(cache.wait_cleared(0), timeout=10)
        found = await access.authenticate(made.token)
        generation = cache.generation
        await _revoke_elsewhere(sessions, found.token_id)
        await asyncio.wait_for(cache.wait_cleared(generation), timeout=10)
        with pytest.raises(InvalidToken):
            await access.authenticate(made.token)


def test_a_lookup_that_started_before_a_clear_is_not_stored() -> None:
    cache = TokenCache(600.0, clock=Clock())
    generation = cache.generation
    cache.clear()
    cache.put("digest", object(), generation)  # type: ignore[arg-type]
    assert cache.get("digest") is None
