"""Every endpoint x every kind of caller: no token, a wrong token, another user, the owner
of the resource, an operator. A refusal changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import Base
from tests.api.conftest import fund, new_actor, problem_type
from tests.support.ledger import every_table
from tests.support.pgbouncer import through_pgbouncer

pytestmark = through_pgbouncer

CALLERS = ("none", "wrong", "other", "owner", "operator")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {a}: the owner's account, {b}: the other user's account
    body: dict[str, object] | None
    expected: tuple[int, int, int, int, int]  # in CALLERS order
    moves_money: bool = False


ENDPOINTS = [
    Endpoint("GET", "/users/me", None, (401, 401, 200, 200, 200)),
    Endpoint("POST", "/users", {"email": "*", "name": "N"}, (201, 201, 201, 201, 201)),
    Endpoint("POST", "/accounts", {"currency": "EUR"}, (401, 401, 201, 201, 201)),
    Endpoint("GET", "/accounts", None, (401, 401, 200, 200, 200)),
    Endpoint("GET", "/accounts/{a}", None, (401, 401, 404, 200, 200)),
    Endpoint("GET", "/accounts/{a}/transfers", None, (401, 401, 404, 200, 200)),
    Endpoint("GET", "/accounts/{a}/transfers/export", None, (401, 401, 404, 200, 200)),
    Endpoint("POST", "/accounts/{a}/deposits", {"amount": 5}, (401, 401, 403, 403, 201), True),
    Endpoint("POST", "/accounts/{a}/withdrawals", {"amount": 5}, (401, 401, 404, 201, 404), True),
    Endpoint(
        "POST",
        "/transfers",
        {"source_account_id": "{a}", "destination_account_id": "{b}", "amount": 5},
        (401, 401, 404, 201, 404),
        True,
    ),
    Endpoint("GET", "/dashboard", None, (401, 401, 200, 200, 200)),
    Endpoint("GET", "/jobs/stats", None, (401, 401, 403, 403, 200)),
    Endpoint("GET", "/audit", None, (401, 401, 403, 403, 200)),
    Endpoint("GET", "/healthz", None, (200, 200, 200, 200, 200)),
    Endpoint("GET", "/readyz", None, (200, 200, 200, 200, 200)),
    Endpoint("GET", "/metrics", None, (200, 200, 200, 200, 200)),
    # Last: it revokes the tokens the rows above use.
    Endpoint("DELETE", "/tokens/current", None, (401, 401, 204, 204, 204)),
]


async def test_each_caller_gets_the_documented_answer_from_each_endpoint(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # One set of callers for the whole matrix (the rows are ordered so that none spoils
    # the next); each cell names its endpoint and caller when it fails.
    operator = await new_actor(client, operator_of=sessions)
    owner, other = await new_actor(client), await new_actor(client)
    await fund(client, operator, owner.account_id, 100)
    callers: dict[str, dict[str, str]] = {
        "none": {},
        "wrong": {"Authorization": "Bearer " + "x" * 43},
        "other": other.headers,
        "owner": owner.headers,
        "operator": operator.headers,
    }

    def fill(value: object) -> object:
        if value == "{a}":
            return owner.account_id
        if value == "{b}":
            return other.account_id
        return value

    cells = [(e, c, x) for e in ENDPOINTS for c, x in zip(CALLERS, e.expected, strict=True)]
    for n, (endpoint, caller, expected) in enumerate(cells):
        cell = f"{endpoint.method} {endpoint.path} as {caller}"
        path = endpoint.path.replace("{a}", str(owner.account_id))
        body = None if endpoint.body is None else {k: fill(v) for k, v in endpoint.body.items()}
        if body is not None and body.get("email") == "*":
            body["email"] = f"matrix-{n}@example.com"
        headers = dict(callers[caller])
        if endpoint.moves_money:
            headers["Idempotency-Key"] = f"matrix-{n}"
        before = await every_table(sessions)
        answer = await client.request(endpoint.method, path, json=body, headers=headers)
        assert answer.status_code == expected, (cell, answer.text)
        if expected >= 400:
            problem_type(answer)
            assert await every_table(sessions) == before, cell
        if expected == 401:
            assert answer.headers["www-authenticate"].startswith("Bearer"), cell


def test_the_matrix_covers_every_route_of_the_app() -> None:
    from api.app import create_app
    from api.settings import ApiSettings

    documented = {
        (method.upper(), path)
        for path, operations in create_app(ApiSettings()).openapi()["paths"].items()
        for method in operations
    }
    covered = {(e.method, e.path.replace("{a}", "{account_id}")) for e in ENDPOINTS}
    assert documented == covered


async def test_a_refusal_is_judged_on_every_table(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    state = await every_table(sessions)

    assert set(state) == set(Base.metadata.tables)
