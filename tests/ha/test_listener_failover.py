"""Job wake-ups across a failover: the workers' LISTEN connection dies with the primary,
reconnects through the multi-host URL to the new one, and NOTIFYs reach it again."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.wakeups import JOBS_CHANNEL, PostgresListener
from lab.servers.formation import Formation


async def test_the_job_listener_follows_the_primary_through_a_failover(
    formation: Formation, ha_engine: AsyncEngine
) -> None:
    woken = asyncio.Event()
    listener = PostgresListener(formation.url(), woken.set)
    old_primary = await asyncio.to_thread(formation.primary)
    running = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.wait_connections(1), timeout=30)
        await asyncio.to_thread(formation.kill, old_primary)

        await asyncio.wait_for(listener.wait_connections(2), timeout=60)
        woken.clear()
        async with ha_engine.begin() as connection:
            await connection.execute(
                text("SELECT pg_notify(:channel, '')"), {"channel": JOBS_CHANNEL}
            )
        await asyncio.wait_for(woken.wait(), timeout=10)
        assert await asyncio.to_thread(formation.primary) != old_primary
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await asyncio.to_thread(formation.restart, old_primary)
        await asyncio.to_thread(formation.wait_healthy)
