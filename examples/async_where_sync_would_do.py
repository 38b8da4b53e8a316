"""Async where sync would do: a batch job that waits on nothing but its one database.

Async does not make a query faster; it lets one thread wait on many things at once. A
command-line job that reads or writes rows one after another on one connection has
nothing to overlap, and pays async's costs on every call: scheduling on the loop, the
greenlet switch into SQLAlchemy's sync core, and with aiosqlite a hop to the connection's
thread and back. The same work in plain synchronous code is simpler and several times
faster; here it is timed both ways, in the same run, on the same file.

When to stay sync: scripts, migrations, reports and batch jobs that do one thing at a
time. Async pays when a process waits on many things at once: a server with many clients,
fan-out to several services, a worker waiting on slow handlers. This project's services
are async because its API is; its lab measures the rest (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Final

from examples.scratch import fix, funded_accounts, pitfall, scratch_ledger
from services import AccountService

READS: Final = 1000


async def main() -> None:
    async with scratch_ledger() as (engine, sessions):
        ids = await funded_accounts(sessions, count=10)
        database = engine.url.database
        assert database is not None

        accounts = AccountService(sessions)
        started = time.perf_counter()
        total_async = 0
        for i in range(READS):
            total_async += (await accounts.get(ids[i % len(ids)])).balance
        async_seconds = time.perf_counter() - started

        # The same reads as a plain script would do them: one sqlite3 connection, no loop,
        # each read in its own transaction as the service's are.
        started = time.perf_counter()
        total_sync = 0
        connection = sqlite3.connect(database, isolation_level=None)
        try:
            for i in range(READS):
                connection.execute("BEGIN")
                row = connection.execute(
                    "SELECT balance FROM accounts WHERE id = ?", (ids[i % len(ids)],)
                ).fetchone()
                connection.execute("COMMIT")
                total_sync += row[0]
        finally:
            connection.close()
        sync_seconds = time.perf_counter() - started

        assert total_async == total_sync  # the same answer both ways
        pitfall(
            f"{READS} reads one after another through the async service: "
            f"{async_seconds * 1000:.0f} ms"
        )
        fix(
            f"the same reads in plain sync sqlite3: {sync_seconds * 1000:.0f} ms, "
            f"{async_seconds / sync_seconds:.0f}x faster (one run, on a shared machine)"
        )


if __name__ == "__main__":
    asyncio.run(main())
