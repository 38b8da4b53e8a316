"""Every endpoint over HTTP: its success, each refusal's status and problem type, and
that a refusal changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.api.conftest import Actor, fund, new_actor, problem_type
from tests.support.ledger import snapshot
from tests.support.pgbouncer import through_pgbouncer

pytestmark = through_pgbouncer

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def operator(client: httpx.AsyncClient, sessions: Sessions) -> Actor:
    return await new_actor(client, operator_of=sessions)


@pytest.fixture
async def alice(client: httpx.AsyncClient, operator: Actor) -> Actor:
    actor = await new_actor(client)
    await fund(client, operator, actor.account_id, 1_000)
    return actor


@pytest.fixture
async def bob(client: httpx.AsyncClient) -> Actor:
    return await new_actor(client)


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


async def test_register_returns_the_user_and_a_working_token(client: httpx.AsyncClient) -> None:
    made = await client.post("/users", json={"email": "New@Example.com", "name": "New"})
    assert made.status_code == 201
    body = made.json()
    assert body["user"]["email"] == "new@example.com"
    me = await client.get("/users/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    assert me.json() == body["user"]


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"email": "not-an-address", "name": "X"}, 422, "invalid-email"),
        ({"email": "x@example.com"}, 422, "validation-error"),
        ({"email": "x@example.com", "name": "X", "role": "operator"}, 422, "validation-error"),
        ({"email": 5, "name": "X"}, 422, "validation-error"),
    ],
)
async def test_register_refusals(
    client: httpx.AsyncClient, sessions: Sessions, body: object, status: int, kind: str
) -> None:
    before = await snapshot(sessions)
    refused = await client.post("/users", json=body)
    assert (refused.status_code, problem_type(refused)) == (status, kind)
    assert await snapshot(sessions) == before


async def test_a_taken_email_is_409(client: httpx.AsyncClient, sessions: Sessions) -> None:
    assert (await client.post("/users", json={"email": "t@example.com", "name": "T"})).is_success
    before = await snapshot(sessions)
    again = await client.post("/users", json={"email": "T@example.com", "name": "T"})
    assert (again.status_code, problem_type(again)) == (409, "email-taken")
    assert await snapshot(sessions) == before


async def test_accounts_open_list_and_read(client: httpx.AsyncClient, alice: Actor) -> None:
    opened = await client.post("/accounts", json={"currency": "USD"}, headers=alice.headers)
    assert opened.status_code == 201
    assert opened.json()["owner_id"] == alice.user_id
    listed = await client.get("/accounts", headers=alice.headers)
    assert [a["id"] for a in listed.json()] == [alice.account_id, opened.json()["id"]]
    one = await client.get(f"/accounts/{alice.account_id}", headers=alice.headers)
    assert (one.status_code, one.json()["balance"]) == (200, 1_000)


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"currency": "eur"}, "invalid-currency"),
        ({"currency": "QQQ"}, "invalid-currency"),
        ({"currency": "EUR", "owner_id": 1}, "validation-error"),
    ],
)
async def test_open_account_refusals(
    client: httpx.AsyncClient, sessions: Sessions, alice: Actor, body: object, kind: str
) -> None:
    before = await snapshot(sessions)
    refused = await client.post("/accounts", json=body, headers=alice.headers)
    assert (refused.status_code, problem_type(refused)) == (422, kind)
    assert await snapshot(sessions) == before


@pytest.mark.parametrize("account", ["999999", "0", "abc", str(2**63)])
async def test_reading_a_missing_or_malformed_account(
    client: httpx.AsyncClient, alice: Actor, account: str
) -> None:
    refused = await client.get(f"/accounts/{account}", headers=alice.headers)
    expected = (404, "account-not-found") if account == "999999" else (422, "validation-error")
    assert (refused.status_code, problem_type(refused)) == expected


async def test_history_pages_with_next_links(
    client: httpx.AsyncClient, alice: Actor, bob: Actor
) -> None:
    for n in range(3):
        sent = await client.post(
            "/transfers",
            json={
                "source_account_id": alice.account_id,
                "destination_account_id": bob.account_id,
                "amount": 10 + n,
            },
            headers={**alice.headers, **key(f"h-{n}")},
        )
        assert sent.status_code == 201, sent.text
    url: str | None = f"/accounts/{alice.account_id}/transfers?limit=2"
    amounts: list[int] = []
    while url is not None:
        page = await client.get(url, headers=alice.headers)
        assert page.status_code == 200
        amounts += [t["amount"] for t in page.json()["items"]]
        url = page.json()["next"]
    assert amounts == [12, 11, 10, 1_000]


async def test_deposit_by_an_operator(
    client: httpx.AsyncClient, operator: Actor, bob: Actor
) -> None:
    done = await client.post(
        f"/accounts/{bob.account_id}/deposits",
        json={"amount": 250, "description": "card payment"},
        headers={**operator.headers, **key("dep-1")},
    )
    assert done.status_code == 201
    assert (done.json()["kind"], done.json()["amount"]) == ("deposit", 250)


async def test_a_user_cannot_deposit(
    client: httpx.AsyncClient, sessions: Sessions, bob: Actor
) -> None:
    before = await snapshot(sessions)
    refused = await client.post(
        f"/accounts/{bob.account_id}/deposits",
        json={"amount": 250},
        headers={**bob.headers, **key("dep-2")},
    )
    assert (refused.status_code, problem_type(refused)) == (403, "forbidden")
    assert await snapshot(sessions) == before


async def test_withdrawal_and_insufficient_funds(
    client: httpx.AsyncClient, sessions: Sessions, alice: Actor
) -> None:
    done = await client.post(
        f"/accounts/{alice.account_id}/withdrawals",
        json={"amount": 400},
        headers={**alice.headers, **key("w-1")},
    )
    assert (done.status_code, done.json()["kind"]) == (201, "withdrawal")
    before = await snapshot(sessions)
    short = await client.post(
        f"/accounts/{alice.account_id}/withdrawals",
        json={"amount": 601},
        headers={**alice.headers, **key("w-2")},
    )
    assert (short.status_code, problem_type(short)) == (409, "insufficient-funds")
    assert (short.json()["balance"], short.json()["requested"]) == (600, 601)
    assert await snapshot(sessions) == before


async def test_transfer_moves_money(client: httpx.AsyncClient, alice: Actor, bob: Actor) -> None:
    sent = await client.post(
        "/transfers",
        json={
            "source_account_id": alice.account_id,
            "destination_account_id": bob.account_id,
            "amount": 300,
        },
        headers={**alice.headers, **key("t-1")},
    )
    assert (sent.status_code, sent.json()["kind"]) == (201, "transfer")
    got = await client.get(f"/accounts/{bob.account_id}", headers=bob.headers)
    assert got.json()["balance"] == 300


@pytest.mark.parametrize(
    ("change", "status", "kind"),
    [
        ({"amount": "300"}, 422, "validation-error"),
        ({"amount": 300.0}, 422, "validation-error"),
        ({"amount": True}, 422, "validation-error"),
        ({"amount": 0}, 422, "invalid-amount"),
        ({"amount": 2**64}, 422, "invalid-amount"),
        ({"amount": 5_000}, 409, "insufficient-funds"),
        ({"destination_account_id": 999_999}, 404, "account-not-found"),
        ({"destination_account_id": "self"}, 422, "validation-error"),
        ({"source_account_id": "self"}, 422, "same-account"),
        ({"surprise": 1}, 422, "validation-error"),
    ],
)
async def test_transfer_refusals(
    client: httpx.AsyncClient,
    sessions: Sessions,
    alice: Actor,
    bob: Actor,
    change: dict[str, object],
    status: int,
    kind: str,
) -> None:
    body: dict[str, object] = {
        "source_account_id": alice.account_id,
        "destination_account_id": bob.account_id,
        "amount": 300,
    }
    if change.get("source_account_id") == "self":
        change = {"destination_account_id": alice.account_id}
    elif change.get("destination_account_id") == "self":
        change = {"destination_account_id": str(bob.account_id)}
    body.update(change)
    before = await snapshot(sessions)
    refused = await client.post("/transfers", json=body, headers={**alice.headers, **key("r")})
    assert (refused.status_code, problem_type(refused)) == (status, kind)
    assert await snapshot(sessions) == before


async def test_a_currency_mismatch_is_409(
    client: httpx.AsyncClient, sessions: Sessions, alice: Actor
) -> None:
    dollars = await new_actor(client, currency="USD")
    before = await snapshot(sessions)
    refused = await client.post(
        "/transfers",
        json={
            "source_account_id": alice.account_id,
            "destination_account_id": dollars.account_id,
            "amount": 1,
        },
        headers={**alice.headers, **key("fx")},
    )
    assert (refused.status_code, problem_type(refused)) == (409, "currency-mismatch")
    assert await snapshot(sessions) == before


async def test_a_money_post_without_an_idempotency_key_is_400(
    client: httpx.AsyncClient, sessions: Sessions, alice: Actor, bob: Actor
) -> None:
    before = await snapshot(sessions)
    refused = await client.post(
        "/transfers",
        json={
            "source_account_id": alice.account_id,
            "destination_account_id": bob.account_id,
            "amount": 1,
        },
        headers=alice.headers,
    )
    assert (refused.status_code, problem_type(refused)) == (400, "idempotency-key-missing")
    assert await snapshot(sessions) == before


async def test_a_body_over_the_limit_is_413(
    client: httpx.AsyncClient, sessions: Sessions, alice: Actor
) -> None:
    before = await snapshot(sessions)
    refused = await client.post(
        "/users",
        content=b'{"email": "' + b"a" * 20_000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert (refused.status_code, problem_type(refused)) == (413, "body-too-large")
    assert await snapshot(sessions) == before


async def test_a_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 1024

    refused = await client.post(
        "/users", content=chunks(), headers={"content-type": "application/json"}
    )
    assert (refused.status_code, problem_type(refused)) == (413, "body-too-large")


async def test_a_body_that_is_not_json_is_415(
    client: httpx.AsyncClient, sessions: Sessions
) -> None:
    before = await snapshot(sessions)
    refused = await client.post(
        "/users",
        content=b"email=a@example.com&name=A",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert (refused.status_code, problem_type(refused)) == (415, "unsupported-media-type")
    assert await snapshot(sessions) == before


async def test_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    refused = await client.post(
        "/users", content=b"{", headers={"content-type": "application/json"}
    )
    assert (refused.status_code, problem_type(refused)) == (422, "validation-error")


async def test_dashboard(client: httpx.AsyncClient, alice: Actor) -> None:
    page = await client.get("/dashboard", headers=alice.headers)
    assert page.status_code == 200
    assert [a["id"] for a in page.json()["accounts"]] == [alice.account_id]
    assert page.json()["summary"][0]["balance"] == 1_000


async def test_audit_and_job_stats_for_operators(
    client: httpx.AsyncClient, operator: Actor, alice: Actor
) -> None:
    audit = await client.get("/audit", headers=operator.headers)
    assert (audit.status_code, audit.json()["ok"]) == (200, True)
    assert audit.json()["transfers_checked"] == 1  # alice's deposit: how far the audit read
    stats = await client.get("/jobs/stats", headers=operator.headers)
    assert (stats.status_code, stats.json()["queued"]) == (200, 1)  # alice's deposit
    for path in ("/audit", "/jobs/stats"):
        refused = await client.get(path, headers=alice.headers)
        assert (refused.status_code, problem_type(refused)) == (403, "forbidden")


async def test_revoking_the_current_token(client: httpx.AsyncClient, bob: Actor) -> None:
    assert (await client.delete("/tokens/current", headers=bob.headers)).status_code == 204
    refused = await client.get("/users/me", headers=bob.headers)
    assert (refused.status_code, problem_type(refused)) == (401, "unauthorized")
    assert refused.headers["www-authenticate"].startswith("Bearer")


async def test_health_ready_and_metrics(client: httpx.AsyncClient, alice: Actor) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")
    text = (await client.get("/metrics")).text
    for name in (
        "ledger_db_pool_size",
        "ledger_db_pool_checked_out",
        "ledger_db_pool_overflow",
        "ledger_db_pool_checkout_waits_total",
        "ledger_db_pool_timeouts_total",
        "ledger_batcher_batch_size_count",
        'ledger_http_requests_total{method="POST",route="/accounts",status="201"}',
        "ledger_http_request_duration_seconds_bucket",
    ):
        assert name in text, name
    assert alice.token not in text


async def test_an_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    refused = await client.get("/nothing-here")
    assert (refused.status_code, problem_type(refused)) == (404, "not-found")
    wrong = await client.put("/users/me")
    assert (wrong.status_code, problem_type(wrong)) == (405, "method-not-allowed")
