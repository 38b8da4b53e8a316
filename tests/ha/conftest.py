"""Shared pieces of the high-availability tests: an engine on the formation, and an
HTTP load against a real `ledgerctl serve` that counts what its clients were answered."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import DatabaseSettings, create_engine, create_session_factory
from lab.servers.formation import Formation
from services import AccessService, AccountService

_emails = itertools.count(1)


@pytest.fixture
async def ha_engine(formation: Formation) -> AsyncIterator[AsyncEngine]:
    """An engine on the formation's multi-host URL (target_session_attrs=read-write)."""
    engine = create_engine(
        DatabaseSettings(url=formation.url(), pool_size=10, max_overflow=30, pool_timeout=10)
    )
    yield engine
    await engine.dispose()


@pytest.fixture
def ha_sessions(ha_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions on `ha_engine`."""
    return create_session_factory(ha_engine)


@dataclass
class HttpLoad:
    """What the HTTP clients saw."""

    acknowledged: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    unavailable_without_retry_after: int = 0
    not_problem_json: int = 0


async def http_transfers(
    sessions: async_sessionmaker[AsyncSession], url: str, *, clients: int, seconds: float
) -> HttpLoad:
    """`clients` users, each POSTing transfers from their account with an Idempotency-Key
    and retrying a failed one with the same key, until `seconds` have passed."""
    tokens: list[tuple[str, int]] = []
    for _ in range(clients):
        made = await AccessService(sessions).register(f"http{next(_emails)}@example.com", "U")
        account = await AccountService(sessions).open(made.user.id, "EUR")
        await AccountService(sessions).deposit(account.id, 1_000_000)
        tokens.append((made.token, account.id))
    seen = HttpLoad()
    deadline = time.monotonic() + seconds

    async def client(number: int, http: httpx.AsyncClient) -> None:
        token, source = tokens[number]
        destination = tokens[(number + 1) % clients][1]
        for sequence in itertools.count():
            key = f"http-{number}-{sequence}"
            while time.monotonic() < deadline:
                try:
                    answer = await http.post(
                        "/transfers",
                        json={
                            "source_account_id": source,
                            "destination_account_id": destination,
                            "amount": 1,
                        },
                        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
                    )
                except httpx.TransportError:
                    seen.statuses[0] += 1
                else:
                    seen.statuses[answer.status_code] += 1
                    if answer.status_code == 201:
                        seen.acknowledged.add(key)
                        break
                    if answer.headers.get("content-type") != "application/problem+json":
                        seen.not_problem_json += 1
                    if answer.status_code == 503 and "retry-after" not in answer.headers:
                        seen.unavailable_without_retry_after += 1
                await asyncio.sleep(0.05)  # the client's pause before retrying
            else:
                return

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await asyncio.gather(*(client(n, http) for n in range(clients)))
    return seen
