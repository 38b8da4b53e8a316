"""The engine behind PgBouncer in transaction mode: what breaks without DB_PG_POOLER, and that
the setting is what fixes it. Each test starts its own PgBouncer (lab/servers/pgbouncer.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from db import DatabaseSettings, create_engine, read_only_options
from lab.servers.pgbouncer import ScratchPgBouncer
from tests.support.backends import NewDatabase, postgres_direct_only
from tests.support.pgbouncer import pooled_settings

StartPgBouncer = Callable[..., ScratchPgBouncer]

# PgBouncer refuses these in the startup packet unless told to ignore them.
LIMITS = ("statement_timeout", "lock_timeout")


async def _same_query_in_two_transactions(settings: DatabaseSettings) -> list[int]:
    engine = create_engine(settings)
    try:
        results = []
        for value in (1, 2):
            async with engine.connect() as connection:
                query = text("SELECT CAST(:v AS integer)")
                results.append((await connection.execute(query, {"v": value})).scalar_one())
        return results
    finally:
        await engine.dispose()


@postgres_direct_only
async def test_the_stock_engine_is_refused_for_its_startup_limits(
    new_database: NewDatabase, start_pgbouncer: StartPgBouncer
) -> None:
    bouncer = start_pgbouncer()
    settings = DatabaseSettings(url=bouncer.url_for(await new_database()))
    with pytest.raises(DBAPIError, match="unsupported startup parameter: statement_timeout"):
        await _same_query_in_two_transactions(settings)


@postgres_direct_only
async def test_ignoring_the_startup_limits_silently_drops_them(
    new_database: NewDatabase, start_pgbouncer: StartPgBouncer
) -> None:
    bouncer = start_pgbouncer(ignore_startup_parameters=LIMITS)
    engine = create_engine(DatabaseSettings(url=bouncer.url_for(await new_database())))
    try:
        async with engine.connect() as connection:
            timeout = (await connection.execute(text("SHOW statement_timeout"))).scalar_one()
    finally:
        await engine.dispose()
    assert timeout == "0"


@postgres_direct_only
async def test_the_stock_engine_loses_its_prepared_statements_between_transactions(
    new_database: NewDatabase, start_pgbouncer: StartPgBouncer
) -> None:
    bouncer = start_pgbouncer(ignore_startup_parameters=LIMITS)
    settings = DatabaseSettings(url=bouncer.url_for(await new_database()))
    with pytest.raises(
        DBAPIError, match=r'prepared statement "__asyncpg_stmt_[0-9a-f]+__" does not exist'
    ):
        await _same_query_in_two_transactions(settings)


@postgres_direct_only
async def test_db_pg_pooler_transaction_runs_the_same_transactions(
    new_database: NewDatabase, start_pgbouncer: StartPgBouncer
) -> None:
    bouncer = start_pgbouncer()
    settings = pooled_settings(DatabaseSettings(url=bouncer.url_for(await new_database())))
    assert await _same_query_in_two_transactions(settings) == [1, 2]


@postgres_direct_only
async def test_many_clients_on_few_server_connections_never_collide_on_statement_names(
    new_database: NewDatabase, start_pgbouncer: StartPgBouncer
) -> None:
    bouncer = start_pgbouncer(pool_size=2)
    url = bouncer.url_for(await new_database())
    engine = create_engine(pooled_settings(DatabaseSettings(url=url, pool_size=12)))

    async def client(number: int) -> list[int]:
        seen = []
        for round_ in range(5):
            async with engine.connect() as connection:
                query = text("SELECT CAST(:v AS integer)")
                seen.append(
                    (await connection.execute(query, {"v": number * 10 + round_})).scalar_one()
                )
        return seen

    try:
        results = await asyncio.gather(*(client(n) for n in range(12)))
    finally:
        await engine.dispose()
    assert results == [[n * 10 + r for r in range(5)] for n in range(12)]


async def _limits_seen(settings: DatabaseSettings, **options: Any) -> tuple[str, str]:
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            run = await connection.execution_options(**options)
            statement = (await run.execute(text("SHOW statement_timeout"))).scalar_one()
            lock = (await run.execute(text("SHOW lock_timeout"))).scalar_one()
    finally:
        await engine.dispose()
    return statement, lock


@postgres_direct_only
@pytest.mark.parametrize("read_only", [False, True])
async def test_the_limits_hold_in_every_transaction_through_the_pooler(
    new_database: NewDatabase, start_pgbouncer: StartPgBouncer, read_only: bool
) -> None:
    bouncer = start_pgbouncer()
    url = bouncer.url_for(await new_database())
    settings = pooled_settings(
        DatabaseSettings(url=url, statement_timeout_ms=4_000, lock_timeout_ms=3_000)
    )
    options = read_only_options("postgresql") if read_only else {}
    assert await _limits_seen(settings, **options) == ("4s", "3s")
