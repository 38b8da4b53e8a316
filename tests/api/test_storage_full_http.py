"""A database with no room to write, over HTTP and the CLI: a 503 problem with
Retry-After, and one line; the same request succeeds once space is back."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import DatabaseSettings
from tests.api.conftest import fund, new_actor, problem_type
from tests.support.backends import postgres_only
from tests.support.cli_runs import ledgerctl
from tests.support.storage import little_room


@postgres_only
async def test_a_full_database_is_a_503_problem_and_one_cli_line(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    settings: DatabaseSettings,
) -> None:
    operator = await new_actor(client, operator_of=sessions)
    alice, bob = await new_actor(client), await new_actor(client)
    await fund(client, operator, alice.account_id, 100)
    async with little_room(engine, after=0):
        answer = await client.post(
            "/transfers",
            json={
                "source_account_id": alice.account_id,
                "destination_account_id": bob.account_id,
                "amount": 5,
            },
            headers={**alice.headers, "Idempotency-Key": "full-1"},
        )
        run = await ledgerctl("--database-url", settings.url, "deposit", str(alice.account_id), "5")
    assert answer.status_code == 503
    assert problem_type(answer) == "storage-full"
    assert "retry-after" in answer.headers
    line = run.one_line_error()
    assert "no room to write" in line
    moved = await client.post(
        "/transfers",
        json={
            "source_account_id": alice.account_id,
            "destination_account_id": bob.account_id,
            "amount": 5,
        },
        headers={**alice.headers, "Idempotency-Key": "full-1"},
    )
    assert moved.status_code == 201
