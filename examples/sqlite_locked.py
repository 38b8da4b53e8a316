"""SQLite's "database is locked" at once, whatever busy_timeout says.

SQLite's default `BEGIN` is DEFERRED: the transaction takes no lock until its first
statement, a read takes a read snapshot, and the first write tries to upgrade it. When
two such transactions read and then write, the second writer's snapshot is stale once the
first commits, and waiting cannot make it fresh: SQLite returns SQLITE_BUSY at once
without calling the busy handler, so `busy_timeout` (5 s here) does not apply and the
caller sees "database is locked" on a database that was locked for microseconds
(aiosqlite#251 is one of many reports).

This project's way: every transaction that may write starts with `BEGIN IMMEDIATE`
(db/sqlite_engine.py): it takes the write lock at BEGIN, where waiting for it is safe and
busy_timeout applies, so the second transaction waits its turn and reads fresh data.
Read-only work opts into DEFERRED (`read_only_options`) and never blocks the writer.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from db import SQLITE_BEGIN_OPTION
from examples.scratch import fix, funded_accounts, pitfall, scratch_ledger

READ = text("SELECT balance FROM accounts WHERE id = :id")
WRITE = text("UPDATE accounts SET balance = :balance WHERE id = :id")


async def withdraw(
    engine: AsyncEngine, account: int, begin: str, both_read: asyncio.Barrier, order: int
) -> str:
    """Read the balance, then write it less 100, in one transaction begun with `begin`.
    The first task commits before the second writes."""
    async with engine.connect() as connection:
        connection = await connection.execution_options(**{SQLITE_BEGIN_OPTION: begin})
        async with connection.begin():
            balance = (await connection.execute(READ, {"id": account})).scalar_one()
            if begin == "DEFERRED":
                await both_read.wait()  # both hold a read snapshot now
            if order == 1:
                await asyncio.sleep(0.1)  # the second commits first
            started = time.perf_counter()
            try:
                await connection.execute(WRITE, {"balance": balance - 100, "id": account})
            except OperationalError as error:
                elapsed = (time.perf_counter() - started) * 1000
                return f"failed after {elapsed:.0f} ms: {error.orig}"
        return "committed"


async def race(engine: AsyncEngine, account: int, begin: str) -> list[str]:
    both_read = asyncio.Barrier(2)
    return list(
        await asyncio.gather(*(withdraw(engine, account, begin, both_read, i) for i in (0, 1)))
    )


async def main() -> None:
    async with scratch_ledger() as (engine, sessions):
        (account,) = await funded_accounts(sessions, count=1, balance=1_000)

        outcomes = await race(engine, account, "DEFERRED")
        failure = next((o for o in outcomes if o.startswith("failed")), "none failed")
        pitfall(f"read then write, BEGIN DEFERRED: {failure} (busy_timeout: 5000 ms)")

        outcomes = await race(engine, account, "IMMEDIATE")
        async with engine.connect() as connection:
            balance = (await connection.execute(READ, {"id": account})).scalar_one()
        fix(f"BEGIN IMMEDIATE: {' and '.join(outcomes)}; balance {balance} (900 - 2 x 100)")


if __name__ == "__main__":
    asyncio.run(main())
