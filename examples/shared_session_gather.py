"""One `AsyncSession` shared by `asyncio.gather`: a session is one connection, one at a time.

`gather` over queries of the same session looks like free concurrency. But a session
holds one connection and one transaction, and a connection runs one statement at a time;
SQLAlchemy refuses the second concurrent use ("concurrent operations are not permitted",
or `IllegalStateChangeError`). Where it happens not to refuse, the queries still run one
after another, inside one transaction that whatever fails first leaves in an unknown state.

This project's way: every concurrent query gets its own session and transaction, as
`DashboardService` does (`run_in_transaction(..., read_only=True)` per query, bounded by a
limit per engine); a service call is one unit of work, so gathering service calls is safe.
(On this project's one-hop aiosqlite adapter, db/sqlite_one_hop.py, the shared session's
queries happen to pass, one after another: no error, and no concurrency either.)
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.exc import InvalidRequestError

from examples.scratch import fix, funded_accounts, pitfall, scratch_ledger
from models import Account
from services import AccountService


async def main() -> None:
    # SQLAlchemy's stock aiosqlite adapter, like asyncpg, hands the loop back while the
    # session provisions its connection, so the second query finds the session busy.
    async with scratch_ledger(sqlite_one_hop=False) as (_, sessions):
        ids = await funded_accounts(sessions, count=4)
        async with sessions() as session:
            queries = (session.scalar(select(Account).where(Account.id == i)) for i in ids)
            # return_exceptions: let every query finish, or the session cannot even close
            results = await asyncio.gather(*queries, return_exceptions=True)
        errors = [r for r in results if isinstance(r, InvalidRequestError)]
        first = str(errors[0]).split(" (Background")[0] if errors else "(none)"
        pitfall(f"gather on one session: {len(errors)} of {len(ids)} queries refused: {first}")

        accounts = AccountService(sessions)
        records = await asyncio.gather(*(accounts.get(i) for i in ids))
        balances = sum(record.balance for record in records)
        fix(
            f"a session per task: {len(records)} of {len(ids)} accounts read concurrently, "
            f"{balances} in all"
        )


if __name__ == "__main__":
    asyncio.run(main())
