"""GET /accounts/{id}/transfers/export: the whole history as NDJSON, streamed, authorised
like the paged history."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.api.conftest import Actor, fund, new_actor, problem_type
from tests.support.pgbouncer import through_pgbouncer

pytestmark = through_pgbouncer


@pytest.fixture
async def alice(client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]) -> Actor:
    operator = await new_actor(client, operator_of=sessions)
    actor = await new_actor(client)
    await fund(client, operator, actor.account_id, 1_000)
    return actor


async def test_the_export_is_the_history_oldest_first_one_transfer_per_line(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    bob = await new_actor(client)
    for n in range(3):
        moved = await client.post(
            "/transfers",
            json={
                "source_account_id": alice.account_id,
                "destination_account_id": bob.account_id,
                "amount": 10 + n,
            },
            headers={**alice.headers, "Idempotency-Key": f"export-{n}"},
        )
        assert moved.status_code == 201, moved.text
    async with client.stream(
        "GET", f"/accounts/{alice.account_id}/transfers/export", headers=alice.headers
    ) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) async for line in answer.aiter_lines() if line]
    page = await client.get(f"/accounts/{alice.account_id}/transfers", headers=alice.headers)
    assert lines == list(reversed(page.json()["items"]))
    assert [line["amount"] for line in lines] == [1_000, 10, 11, 12]


async def test_another_users_export_is_a_404_problem(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    mallory = await new_actor(client)
    answer = await client.get(
        f"/accounts/{alice.account_id}/transfers/export", headers=mallory.headers
    )
    assert answer.status_code == 404
    assert problem_type(answer) == "account-not-found"


async def test_the_export_needs_a_token(client: httpx.AsyncClient, alice: Actor) -> None:
    answer = await client.get(f"/accounts/{alice.account_id}/transfers/export")
    assert answer.status_code == 401
