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

from sqlalchemy import text

from db import read_only_options
from examples.scratch import fix, funded_accounts, pitfall, scratch_ledger
from services import AccountService

READS: Final = 1000
READ: Final = text("SELECT balance FROM accounts WHERE id = :id")


async def main() -> None:
    async with scratch_ledger() as (engine, sessions):
        ids = await funded_accounts(sessions, count=10)
        database = engine.url.database
        assert database is not None
        which = [ids[i % len(ids)] for i in range(READS)]

        accounts = AccountService(sessions)
        started = time.perf_counter()
        through_service = [(await accounts.get(i)).balance for i in which]
        service_seconds = time.perf_counter() - started

        # The same SQL through the async engine, each read in its own transaction as the
        # service's are: what async itself costs, without the ORM and the service's checks.
        started = time.perf_counter()
        async with engine.connect() as connection:
            connection = await connection.execution_options(**read_only_options("sqlite"))
            through_engine = []
            for i in which:
                async with connection.begin():
                    balance = await connection.scalar(READ, {"id": i})
                through_engine.append(balance)
        engine_seconds = time.perf_counter() - started

        # And as a plain script would do it: one sqlite3 connection, no event loop.
        started = time.perf_counter()
        connection_3 = sqlite3.connect(database, isolation_level=None)
        try:
            through_sqlite3 = []
            for i in which:
                connection_3.execute("BEGIN")
                through_sqlite3.append(connection_3.execute(str(READ), {"id": i}).fetchone()[0])
                connection_3.execute("COMMIT")
        finally:
            connection_3.close()
        sync_seconds = time.perf_counter() - started

        assert through_service == through_engine == through_sqlite3  # the same answers
        pitfall(
            f"{READS} reads one after another, async: {service_seconds * 1000:.0f} ms through "
            f"the service, {engine_seconds * 1000:.0f} ms as plain SQL on the async engine"
        )
        fix(
            f"the same reads in sync sqlite3: {sync_seconds * 1000:.0f} ms, "
            f"{engine_seconds / sync_seconds:.0f}x faster than the same SQL async "
            "(one run, on a shared machine)"
        )


if __name__ == "__main__":
    asyncio.run(main())
