"""Connection leaks on cancellation: a hand-rolled session keeps its connection.

Cancellation is how asyncio says "stop": a client disconnects, a timeout expires, a server
shuts down, and `CancelledError` is raised at whatever `await` the task is on, usually
the query. Code that opens a session and closes it on the line after the query never
reaches that line: the connection stays checked out of the pool (and on SQLite may hold
the write lock) for as long as the session lives. Enough of these and the pool is empty.

This project's way: work runs through `run_in_transaction`, which owns its session in
`async with` blocks, so a cancellation rolls back and returns the connection; its
`timeout=` cancels a statement still running (on SQLite by interrupting it,
db/cancellation.py) and raises the typed `OperationTimeout`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from db import pool_status
from examples.scratch import fix, pitfall, scratch_ledger
from services.errors import OperationTimeout
from services.transactions import run_in_transaction

# A query that would count for hours: the stand-in for any slow statement.
SLOW_QUERY: Final = text(
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000000)"
    " SELECT count(*) FROM n"
)
TIMEOUT: Final = 0.2


async def main() -> None:
    async with scratch_ledger() as (engine, sessions):
        before = pool_status(engine).checked_out
        # Where a hand-rolled session lives on past its task: a request's context, a
        # registry, a traceback that is still referenced.
        requests: list[AsyncSession] = []

        async def handler() -> None:
            session = sessions()
            requests.append(session)
            await session.execute(SLOW_QUERY)
            await session.close()  # never reached when the task is cancelled

        try:
            async with asyncio.timeout(TIMEOUT):
                await handler()
        except TimeoutError:
            pass
        leaked = pool_status(engine).checked_out
        pitfall(
            f"cancelled mid-query, a hand-rolled session keeps its connection: "
            f"checked out {before} before, {leaked} after"
        )
        await requests[0].close()  # what the handler never did

        started = time.perf_counter()
        try:
            await run_in_transaction(
                sessions, lambda session: session.execute(SLOW_QUERY), timeout=TIMEOUT
            )
        except OperationTimeout as error:
            elapsed = time.perf_counter() - started
            after = pool_status(engine).checked_out
            fix(
                f"run_in_transaction(timeout={TIMEOUT}): {type(error).__name__} after "
                f"{elapsed:.2f}s, checked out {before} before, {after} after"
            )


if __name__ == "__main__":
    asyncio.run(main())
