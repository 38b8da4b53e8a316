"""A cancelled PostgreSQL operation leaves a clean log (issue 10).

asyncpg's default sslmode=prefer opens every connection, and every cancel request it sends
for a cancelled statement, with an SSLRequest. A task cancelled in the one loop iteration
between that socket connecting and the request being sent left asyncpg's handshake future
holding ConnectionError('unexpected connection_lost() call'), which nobody awaited: asyncio
logged "Future exception was never retrieved". The engine now connects without TLS unless
the URL or PGSSLMODE asks for it. The test cancels a connect at every loop iteration
instead of hoping that a random storm hits the window (the storm in test_cancellation.py
checks its log too).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from db import DatabaseSettings, create_engine, pool_status
from tests.support.backends import postgres_only
from tests.support.clean_log import captured_log

# Cancelling after 0..N loop iterations covers connecting (DNS, TCP, SSLRequest, startup,
# authentication); the window seen was at iterations 4-5.
ITERATIONS = 16


async def _cancel_after(task: asyncio.Task[Any], iterations: int) -> None:
    for _ in range(iterations):
        await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@postgres_only
async def test_a_connect_cancelled_at_any_point_leaves_a_clean_log(
    settings: DatabaseSettings,
) -> None:
    async with captured_log() as log:
        for iterations in range(ITERATIONS):
            # A new engine each time, so that every checkout has to connect.
            engine = create_engine(settings.replace(pool_size=1, max_overflow=0))

            async def checkout(engine: AsyncEngine = engine) -> None:
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))

            await _cancel_after(asyncio.create_task(checkout()), iterations)
            assert pool_status(engine).checked_out == 0
            await engine.dispose()
    assert log.lines == []


@postgres_only
@pytest.mark.parametrize("how", ["url", "PGSSLMODE"])
async def test_tls_is_still_used_when_asked_for(
    settings: DatabaseSettings, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    # The test server has TLS off, so a connection that insists on TLS is refused: proof
    # that the request reached asyncpg instead of being overridden by ssl=False.
    if how == "url":
        url = make_url(settings.url).update_query_dict({"ssl": "require"})
        settings = settings.replace(url=url.render_as_string(hide_password=False))
    else:
        monkeypatch.setenv("PGSSLMODE", "require")
    engine = create_engine(settings)
    try:
        with pytest.raises(ConnectionError, match="rejected SSL upgrade"):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
