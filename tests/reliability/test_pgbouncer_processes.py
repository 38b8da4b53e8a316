"""Several app processes through one PgBouncer in transaction mode: PostgreSQL sees only
PgBouncer's pool, however many connections the processes' pools hold."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from db import DatabaseSettings, create_engine, create_session_factory, migrations
from lab.servers.pgbouncer import ScratchPgBouncer
from services import LedgerAuditor
from tests.support.backends import NewDatabase, postgres_direct_only
from tests.support.databases import POSTGRES_URL
from tests.support.ledger import open_account
from tests.support.paths import PROJECT_ROOT

PROCESSES = 4
POOL_PER_PROCESS = 10
PGBOUNCER_POOL = 5
REQUESTS = 120
TASKS = 20
ACCOUNTS = 8


async def _prepare(url: str) -> list[int]:
    engine = create_engine(DatabaseSettings(url=url))
    try:
        await migrations.upgrade(engine)
        sessions = create_session_factory(engine)
        return [(await open_account(sessions, balance=10_000)).id for _ in range(ACCOUNTS)]
    finally:
        await engine.dispose()


async def _peak_server_connections(database: str, done: asyncio.Event) -> int:
    # Observation, not synchronisation: sample the server's view until the apps finish.
    admin = create_async_engine(POSTGRES_URL)
    peak = 0
    query = text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db")
    try:
        async with admin.connect() as connection:
            while not done.is_set():
                peak = max(peak, (await connection.execute(query, {"db": database})).scalar_one())
                await connection.rollback()
                await asyncio.sleep(0.01)
    finally:
        await admin.dispose()
    return peak


async def _app(bouncer: ScratchPgBouncer, direct: str, accounts: list[int], seed: int) -> Any:
    env = {
        **os.environ,
        "DATABASE_URL": bouncer.url_for(direct),
        "DB_PG_POOLER": "transaction",
        "DB_LISTEN_URL": direct,
        "DB_POOL_SIZE": str(POOL_PER_PROCESS),
        "DB_MAX_OVERFLOW": "0",
    }
    ids = ",".join(map(str, accounts))
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "tests.support.pooler_child", ids, str(REQUESTS), str(TASKS)),
        str(seed),
        cwd=PROJECT_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=180)
    assert process.returncode == 0, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1])


@postgres_direct_only
async def test_four_apps_with_pools_of_10_share_pgbouncer_s_five_server_connections(
    new_database: NewDatabase, start_pgbouncer: Callable[..., ScratchPgBouncer]
) -> None:
    direct = await new_database()
    accounts = await _prepare(direct)
    bouncer = start_pgbouncer(pool_size=PGBOUNCER_POOL)
    done = asyncio.Event()
    watcher = asyncio.create_task(_peak_server_connections(str(make_url(direct).database), done))
    try:
        reports = await asyncio.gather(
            *(_app(bouncer, direct, accounts, seed) for seed in range(PROCESSES))
        )
    finally:
        done.set()
        peak = await watcher

    assert all(r["errors"] == {} for r in reports), reports
    assert [r["answered"] for r in reports] == [REQUESTS] * PROCESSES
    assert [r["peak_checked_out"] for r in reports] == [POOL_PER_PROCESS] * PROCESSES
    assert 0 < peak <= PGBOUNCER_POOL
    engine = create_engine(DatabaseSettings(url=direct))
    try:
        sessions = create_session_factory(engine)
        report = await LedgerAuditor(sessions).verify()
        async with engine.connect() as connection:
            transfers = (
                await connection.execute(
                    text("SELECT count(*) FROM transfers WHERE source_account_id IS NOT NULL")
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    assert report.ok, report.problems
    assert transfers == sum(r["moved"] for r in reports)
