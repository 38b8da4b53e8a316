"""Fixtures of the HTTP tests: the app in-process (httpx over ASGI, lifespan run by
asgi-lifespan) on the shared database of each backend, and the callers that use it."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.types import ASGIApp

from api.app import create_app
from api.settings import ApiSettings
from db import DatabaseSettings
from services import SYSTEM, AccessService, Role

_emails = itertools.count(1)


@dataclass(frozen=True)
class Actor:
    """A user (or operator) of the API with their token and first account."""

    user_id: int
    token: str
    account_id: int

    @property
    def headers(self) -> dict[str, str]:
        """Authorization for this actor."""
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="session")
def api_settings(settings: DatabaseSettings, engine: AsyncEngine) -> ApiSettings:
    """The API over the shared (migrated) test database."""
    return ApiSettings(database=settings, request_timeout=20)


@pytest.fixture(scope="session")
async def started_app(api_settings: ApiSettings) -> AsyncIterator[ASGIApp]:
    """One started app per backend, as a server process would have it."""
    async with LifespanManager(create_app(api_settings)) as manager:
        yield manager.app


@pytest.fixture
async def client(
    started_app: ASGIApp, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the started app (empty tables)."""
    transport = httpx.ASGITransport(app=started_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as http:
        yield http


async def new_actor(
    client: httpx.AsyncClient,
    *,
    operator_of: async_sessionmaker[AsyncSession] | None = None,
    currency: str = "EUR",
) -> Actor:
    """Register a user over HTTP and open one account for them; with `operator_of`, an
    operator made through the service on those sessions, as `ledgerctl operator add` does."""
    email = f"actor{next(_emails)}@example.com"
    if operator_of is not None:
        made = await AccessService(operator_of, caller=SYSTEM).register(
            email, "Operator", role=Role.OPERATOR
        )
        user_id, token = made.user.id, made.token
    else:
        answer = await client.post("/users", json={"email": email, "name": "User"})
        assert answer.status_code == 201, answer.text
        user_id, token = answer.json()["user"]["id"], answer.json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    opened = await client.post("/accounts", json={"currency": currency}, headers=headers)
    assert opened.status_code == 201, opened.text
    return Actor(user_id=user_id, token=token, account_id=opened.json()["id"])


async def fund(client: httpx.AsyncClient, operator: Actor, account_id: int, amount: int) -> None:
    """An operator's deposit."""
    done = await client.post(
        f"/accounts/{account_id}/deposits",
        json={"amount": amount},
        headers={**operator.headers, "Idempotency-Key": f"fund-{account_id}-{next(_emails)}"},
    )
    assert done.status_code == 201, done.text


def problem_type(response: httpx.Response) -> str:
    """The problem type slug of an error response (and it is a problem document)."""
    assert response.headers["content-type"] == "application/problem+json", response.text
    body = response.json()
    assert body["status"] == response.status_code
    assert {"type", "title", "detail"} <= set(body)
    return str(body["type"]).rsplit(":", 1)[-1]
