"""GET /dashboard: the dashboard's bound on concurrent queries holds across requests,
although the API builds a DashboardService per request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from api.settings import ApiSettings
from api.state import AppState
from repositories import AccountRepository, ActivityRepository, NotificationRepository
from repositories.users import UserRepository
from services import DashboardService
from services.dashboard import DEFAULT_MAX_CONCURRENCY
from tests.api.conftest import new_actor
from tests.support.pgbouncer import through_pgbouncer

pytestmark = through_pgbouncer

REQUESTS = 4
QUERIES_PER_DASHBOARD = 5  # user, accounts, recent transfers, summary, notifications


class Gate:
    """Holds every dashboard query at its start until opened; counts the queries that
    asked for a slot and those held."""

    def __init__(self) -> None:
        self.asked = 0
        self.held = 0
        self.peak = 0
        self.opened = asyncio.Event()
        self.changed = asyncio.Condition()

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def counting(
        self, slot: Callable[[], AbstractAsyncContextManager[None]]
    ) -> Callable[[], AbstractAsyncContextManager[None]]:
        @asynccontextmanager
        async def counted() -> AsyncIterator[None]:
            self.asked += 1
            await self._notify()
            async with slot():
                yield

        return counted

    def holding(self, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def held(*args: Any, **kwargs: Any) -> Any:
            self.held += 1
            self.peak = max(self.peak, self.held)
            await self._notify()
            try:
                await self.opened.wait()
            finally:
                self.held -= 1
            return await method(*args, **kwargs)

        return held

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(60), self.changed:
            await self.changed.wait_for(condition)


@pytest.fixture
async def app_and_client(
    api_settings: ApiSettings, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app of this test's own (its state is what the test reads), over empty tables."""
    app = create_app(api_settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as client:
            yield app, client


async def test_at_most_the_bound_of_dashboard_queries_run_across_concurrent_requests(
    app_and_client: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = app_and_client
    actors = [await new_actor(client) for _ in range(REQUESTS)]
    state: AppState = app.state.ledger
    limit = DashboardService(state.sessions).limit  # the one every request's service shares
    gate = Gate()
    monkeypatch.setattr(limit, "slot", gate.counting(limit.slot))
    for owner, name in [
        (UserRepository, "get"),
        (AccountRepository, "for_owner"),
        (ActivityRepository, "recent_for_owner"),
        (ActivityRepository, "totals_for_owner"),
        (NotificationRepository, "recent_for_user"),
    ]:
        monkeypatch.setattr(owner, name, gate.holding(getattr(owner, name)))
    requests = [
        asyncio.create_task(client.get("/dashboard", headers=actor.headers)) for actor in actors
    ]
    total = REQUESTS * QUERIES_PER_DASHBOARD
    # Every query of every request has asked for a slot, and those given one are held.
    await gate.wait_for(lambda: gate.asked == total and gate.held == DEFAULT_MAX_CONCURRENCY)
    assert limit.waiting == total - DEFAULT_MAX_CONCURRENCY
    gate.opened.set()
    answers = await asyncio.gather(*requests)
    assert [a.status_code for a in answers] == [200] * REQUESTS
    assert gate.peak == DEFAULT_MAX_CONCURRENCY
    assert (limit.running, limit.waiting) == (0, 0)
