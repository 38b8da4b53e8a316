"""A failover under load: the primary's keeper and postgres are SIGKILLed mid-load, and
the clients (services in this process, HTTP against a real `ledgerctl serve`) retry with
the same idempotency keys. Judged by invariants: nothing acknowledged lost, nothing
doubled or invented, money conserved, audit clean, every error typed, no HTTP 500."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import pool_status
from lab.ha import load
from lab.servers.formation import Formation
from models import Transfer
from services import TransferBatcher
from tests.ha.conftest import http_transfers
from tests.support.api_server import serving

LOAD_SECONDS = 14.0
KILL_AFTER_SECONDS = 3.0


async def test_failover_under_load_loses_nothing_and_types_every_error(
    formation: Formation, ha_engine: AsyncEngine, ha_sessions: async_sessionmaker[AsyncSession]
) -> None:
    ledger = await load.open_ledger(ha_sessions, 8)
    observed = load.Observed()
    old_primary = await asyncio.to_thread(formation.primary)
    async with serving(formation.url()) as server, TransferBatcher(ha_sessions) as batcher:

        async def kill_primary() -> float:
            await asyncio.sleep(KILL_AFTER_SECONDS)  # let the load run on the old primary
            moment = time.monotonic()
            await asyncio.to_thread(formation.kill, old_primary)
            return moment

        killed_at, _, _, http = await asyncio.gather(
            kill_primary(),
            load.run_clients(
                ha_sessions,
                ledger,
                clients=8,
                seconds=LOAD_SECONDS,
                observed=observed,
                key_prefix="ha-s",
            ),
            load.run_clients(
                ha_sessions,
                ledger,
                clients=8,
                seconds=LOAD_SECONDS,
                batcher=batcher,
                observed=observed,
                key_prefix="ha-b",
            ),
            http_transfers(ha_sessions, server.url, clients=8, seconds=LOAD_SECONDS),
        )
    new_primary = await asyncio.to_thread(formation.primary)
    assert new_primary != old_primary

    assert observed.untyped() == 0, observed.untyped_errors
    assert observed.first_commit_after(killed_at) is not None, load.describe(observed)
    verdict = await load.check(ha_sessions, ledger, observed, key_prefix="ha")
    assert verdict.ok, verdict

    assert http.statuses[500] == 0, http.statuses
    assert http.unavailable_without_retry_after == 0
    assert http.not_problem_json == 0
    async with ha_sessions() as session:
        rows = (
            await session.execute(
                select(Transfer.idempotency_key, func.count())
                .where(Transfer.idempotency_key.like("http-%"))
                .group_by(Transfer.idempotency_key)
            )
        ).all()
    stored = dict(rows)
    assert all(key in stored for key in http.acknowledged)
    assert all(count == 1 for count in stored.values())
    assert pool_status(ha_engine).checked_out == 0

    await asyncio.to_thread(formation.restart, old_primary)
    await asyncio.to_thread(formation.wait_healthy)
    assert (
        await asyncio.to_thread(formation.primary) == new_primary
    )  # the killed node came back as the standby


async def test_switchover_under_load_loses_nothing_and_types_every_error(
    formation: Formation, ha_engine: AsyncEngine, ha_sessions: async_sessionmaker[AsyncSession]
) -> None:
    ledger = await load.open_ledger(ha_sessions, 8)
    observed = load.Observed()
    old_primary = await asyncio.to_thread(formation.primary)
    async with TransferBatcher(ha_sessions) as batcher:

        async def switch_over() -> None:
            await asyncio.sleep(1.0)  # let the load run on the old primary
            await asyncio.to_thread(formation.switchover)

        await asyncio.gather(
            switch_over(),
            load.run_clients(
                ha_sessions, ledger, clients=8, seconds=8, observed=observed, key_prefix="sw-s"
            ),
            load.run_clients(
                ha_sessions,
                ledger,
                clients=8,
                seconds=8,
                batcher=batcher,
                observed=observed,
                key_prefix="sw-b",
            ),
        )
    await asyncio.to_thread(formation.wait_healthy)
    assert await asyncio.to_thread(formation.primary) != old_primary
    assert observed.untyped() == 0, observed.untyped_errors
    verdict = await load.check(ha_sessions, ledger, observed, key_prefix="sw")
    assert verdict.ok, verdict
    assert pool_status(ha_engine).checked_out == 0
