"""A real `ledgerctl serve` over TCP: hundreds of concurrent transfers with retries and
disconnects, and SIGTERM with requests in flight, on both engines and with two workers."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from db import DatabaseSettings, create_engine, create_session_factory, migrations
from models import Transfer
from services import SYSTEM, AccessService, AccountService, LedgerAuditor, Role
from tests.support.api_server import serving
from tests.support.backends import NewDatabase
from tests.support.cli_runs import ledgerctl_process
from tests.support.pgbouncer import PGBOUNCER, direct_url, pooled_settings, through_pgbouncer

BAD_OUTPUT = ("Task was destroyed", "unclosed", "Traceback", "never awaited")
# Generous: the machine running the suite may be busy; a 504 here would be the load's.
SERVER_ENV = {"API_REQUEST_TIMEOUT": "60"}

pytestmark = through_pgbouncer


@dataclass
class Ledger:
    """A migrated database with funded users, and an engine to check it with."""

    url: str
    engine: AsyncEngine
    tokens: list[str]
    accounts: list[int]
    env: dict[str, str]


@pytest.fixture
async def ledger(backend: str, new_database: NewDatabase) -> AsyncIterator[Ledger]:
    url = await new_database()
    settings = DatabaseSettings(url=url)
    if backend == PGBOUNCER:
        settings = pooled_settings(settings)
    engine = create_engine(settings)
    await migrations.upgrade(engine)
    sessions = create_session_factory(engine)
    tokens, accounts = [], []
    for n in range(20):
        made = await AccessService(sessions, caller=SYSTEM).register(
            f"u{n}@example.com", f"U{n}", role=Role.USER
        )
        account = await AccountService(sessions).open(made.user.id, "EUR")
        await AccountService(sessions).deposit(account.id, 100_000)
        tokens.append(made.token)
        accounts.append(account.id)
    yield Ledger(url, engine, tokens, accounts, _server_env(backend, url))
    await engine.dispose()


def _server_env(backend: str, url: str) -> dict[str, str]:
    if backend != PGBOUNCER:
        return dict(SERVER_ENV)
    # The server is configured as a deployment behind PgBouncer would be.
    return SERVER_ENV | {"DB_PG_POOLER": "transaction", "DB_LISTEN_URL": direct_url(url)}


async def _keys_in_database(engine: AsyncEngine) -> list[str]:
    async with create_session_factory(engine)() as session:
        rows = await session.scalars(
            select(Transfer.idempotency_key).where(Transfer.source_account_id.is_not(None))
        )
        return [k for k in rows if k is not None]


def _transfer(ledger: Ledger, n: int) -> tuple[str, dict[str, object], dict[str, str]]:
    who = n % len(ledger.tokens)
    body: dict[str, object] = {
        "source_account_id": ledger.accounts[who],
        "destination_account_id": ledger.accounts[(who + 1 + n % 7) % len(ledger.accounts)],
        "amount": 1 + n % 50,
    }
    key = f"load-{n}"
    return key, body, {"Authorization": f"Bearer {ledger.tokens[who]}", "Idempotency-Key": key}


async def test_hundreds_of_concurrent_transfers_with_retries_and_disconnects(
    ledger: Ledger,
) -> None:
    rng = random.Random(11)
    total = 500
    async with serving(ledger.url, env=ledger.env) as server:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as http:

            async def post(body: dict[str, object], headers: dict[str, str]) -> httpx.Response:
                # A dropped connection (e.g. a keep-alive connection the server closed as
                # it was reused) is retried with the same key, as a careful client would.
                for _ in range(10):
                    try:
                        return await http.post("/transfers", json=body, headers=headers)
                    except httpx.TransportError:
                        continue
                raise AssertionError("ten transport errors in a row")

            async def client(n: int) -> list[int]:
                _, body, headers = _transfer(ledger, n)
                statuses = []
                if rng.random() < 0.1:
                    # Hang up before the answer: the request may or may not have committed.
                    with contextlib.suppress(httpx.TransportError):
                        await http.post("/transfers", json=body, headers=headers, timeout=0.005)
                answer = await post(body, headers)
                statuses.append(answer.status_code)
                if rng.random() < 0.15:  # a client that did not trust the first answer
                    again = await post(body, headers)
                    statuses.append(again.status_code)
                    assert again.json()["id"] == answer.json()["id"]
                return statuses

            outcomes = await asyncio.gather(*(client(n) for n in range(total)))
        assert await server.stop() == 0
    assert {s for statuses in outcomes for s in statuses} == {201}
    keys = await _keys_in_database(ledger.engine)
    assert sorted(keys) == sorted(f"load-{n}" for n in range(total))  # one per key
    report = await LedgerAuditor(create_session_factory(ledger.engine)).verify()
    assert report.ok, report.problems
    assert not [line for line in server.lines if any(bad in line for bad in BAD_OUTPUT)]


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_answers_every_accepted_request_and_exits_0(
    ledger: Ledger, workers: int
) -> None:
    total = 150
    answered: dict[str, int] = {}
    enough = asyncio.Event()
    async with serving(ledger.url, workers=workers, env=ledger.env) as server:
        # No keep-alive: a request is either taken by the server on a new connection or
        # refused at connect time, never lost on a connection the server is closing.
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as http:

            async def client(n: int) -> None:
                key, body, headers = _transfer(ledger, n)
                try:
                    answer = await http.post("/transfers", json=body, headers=headers)
                except httpx.TransportError:
                    return  # refused or cut before the server read it: not accepted
                answered[key] = answer.status_code
                if len(answered) >= 20:
                    enough.set()

            tasks = [asyncio.create_task(client(n)) for n in range(total)]
            await enough.wait()  # requests are flowing: stop the server in the middle
            stopped = asyncio.create_task(server.stop())
            await asyncio.gather(*tasks)
            code = await stopped
    assert code == 0, server.output
    assert set(answered.values()) == {201}, answered
    # Every transfer the server committed was answered: none done behind a client's back.
    assert set(await _keys_in_database(ledger.engine)) == set(answered)
    report = await LedgerAuditor(create_session_factory(ledger.engine)).verify()
    assert report.ok, report.problems
    assert not [line for line in server.lines if any(bad in line for bad in BAD_OUTPUT)], (
        server.output
    )


async def test_serve_refuses_an_unmigrated_database_in_one_line(
    backend: str, new_database: NewDatabase
) -> None:
    url = await new_database()
    done = await ledgerctl_process(
        "--database-url", url, "serve", "--port", "1", env=_server_env(backend, url)
    )
    line = done.one_line_error()
    assert "the database has no schema" in line
    assert "run `ledgerctl migrate`" in line
