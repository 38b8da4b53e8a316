"""Idempotency-Key over HTTP: a replay returns the original answer and says so; the same
key with another body is 422; a concurrent duplicate waits for the original and gets its
answer (never a second transfer, never 409). Keys are per caller."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.routes.money import REPLAY_HEADER
from tests.api.conftest import Actor, fund, new_actor, problem_type
from tests.support.ledger import snapshot
from tests.support.pgbouncer import through_pgbouncer

pytestmark = through_pgbouncer

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def pair(client: httpx.AsyncClient, sessions: Sessions) -> tuple[Actor, Actor]:
    operator = await new_actor(client, operator_of=sessions)
    alice, bob = await new_actor(client), await new_actor(client)
    await fund(client, operator, alice.account_id, 1_000)
    return alice, bob


def _body(alice: Actor, bob: Actor, amount: int = 100, **more: object) -> dict[str, object]:
    return {
        "source_account_id": alice.account_id,
        "destination_account_id": bob.account_id,
        "amount": amount,
        **more,
    }


async def test_a_retry_gets_the_original_status_and_body_with_the_replay_header(
    client: httpx.AsyncClient, sessions: Sessions, pair: tuple[Actor, Actor]
) -> None:
    alice, bob = pair
    headers = {**alice.headers, "Idempotency-Key": "pay-1"}
    first = await client.post("/transfers", json=_body(alice, bob), headers=headers)
    after = await snapshot(sessions)
    again = await client.post("/transfers", json=_body(alice, bob), headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert REPLAY_HEADER.lower() not in first.headers
    assert again.headers[REPLAY_HEADER] == "true"
    assert await snapshot(sessions) == after


@pytest.mark.parametrize("change", [{"amount": 101}, {"description": "another"}])
async def test_the_same_key_with_another_body_is_422(
    client: httpx.AsyncClient,
    sessions: Sessions,
    pair: tuple[Actor, Actor],
    change: dict[str, object],
) -> None:
    alice, bob = pair
    headers = {**alice.headers, "Idempotency-Key": "pay-1"}
    assert (await client.post("/transfers", json=_body(alice, bob), headers=headers)).is_success
    before = await snapshot(sessions)
    refused = await client.post("/transfers", json={**_body(alice, bob), **change}, headers=headers)
    assert (refused.status_code, problem_type(refused)) == (422, "idempotency-key-reused")
    assert await snapshot(sessions) == before


async def test_two_users_may_use_the_same_key(
    client: httpx.AsyncClient, pair: tuple[Actor, Actor]
) -> None:
    alice, bob = pair
    a = await client.post(
        "/transfers", json=_body(alice, bob, 10), headers={**alice.headers, "Idempotency-Key": "k"}
    )
    b = await client.post(
        "/transfers", json=_body(bob, alice, 5), headers={**bob.headers, "Idempotency-Key": "k"}
    )
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["id"] != b.json()["id"]
    assert REPLAY_HEADER.lower() not in b.headers


async def test_concurrent_duplicates_all_get_the_one_original(
    client: httpx.AsyncClient, sessions: Sessions, pair: tuple[Actor, Actor]
) -> None:
    alice, bob = pair
    headers = {**alice.headers, "Idempotency-Key": "burst"}
    answers = await asyncio.gather(
        *(client.post("/transfers", json=_body(alice, bob), headers=headers) for _ in range(20))
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(REPLAY_HEADER.lower() not in a.headers for a in answers) == 1
    bob_now = await client.get(f"/accounts/{bob.account_id}", headers=bob.headers)
    assert bob_now.json()["balance"] == 100


async def test_a_refused_request_does_not_use_up_its_key(
    client: httpx.AsyncClient, sessions: Sessions, pair: tuple[Actor, Actor]
) -> None:
    alice, bob = pair
    headers = {**alice.headers, "Idempotency-Key": "later"}
    short = await client.post("/transfers", json=_body(alice, bob, 5_000), headers=headers)
    assert short.status_code == 409
    fine = await client.post("/transfers", json=_body(alice, bob, 500), headers=headers)
    assert fine.status_code == 201
    assert REPLAY_HEADER.lower() not in fine.headers
