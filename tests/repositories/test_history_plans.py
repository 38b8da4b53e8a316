"""History pages read only their rows: an account's history and an owner's recent
transfers, the first page and a keyset page deep in the history, on both engines.

SQLite: EXPLAIN QUERY PLAN shows no scan of `transfers`, only searches of the history
indexes (bounded by the account and the keyset) and the primary key. PostgreSQL: EXPLAIN
ANALYZE counts the rows each scan of `transfers` read, which must stay within what the
page needs however long the history
(here 20 times longer). A table this small would often be cheaper to read whole, so
PostgreSQL's sequential scans are priced out in these transactions: the plan then shows
what the query's shape allows (the `source OR destination` shape allows no bounded scan).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import Account, Transfer, User
from repositories import ActivityRepository, TransferRepository
from tests.support.plans import Plan, plan_of

PAGE = 5
TRANSFERS = 400
HISTORY_INDEXES = ("ix_transfers_source_history", "ix_transfers_destination_history")


async def _ledger(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int, int]:
    """Two users: `owner` with accounts 1 and 2, `other` with account 3; TRANSFERS
    transfers among the three (each of the owner's accounts on every leg kind)."""
    async with sessions() as session, session.begin():
        await session.execute(
            insert(User), [{"id": i, "email": f"u{i}@example.com", "name": "U"} for i in (1, 2)]
        )
        await session.execute(
            insert(Account),
            [{"id": i, "owner_id": 1 if i < 3 else 2, "currency": "EUR"} for i in (1, 2, 3)],
        )
        pairs = [(1, 2), (2, 3), (3, 1), (None, 1), (2, None)]
        await session.execute(
            insert(Transfer),
            [
                {
                    "source_account_id": pairs[i % 5][0],
                    "destination_account_id": pairs[i % 5][1],
                    "amount": 1,
                    "currency": "EUR",
                }
                for i in range(TRANSFERS)
            ],
        )
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("ANALYZE transfers"))
            await session.execute(text("ANALYZE accounts"))
    return 1, 1, TRANSFERS // 2


async def _plan(
    sessions: async_sessionmaker[AsyncSession],
    read: Callable[[AsyncSession], Awaitable[Sequence[Transfer]]],
) -> tuple[Plan, Sequence[Transfer]]:
    async with sessions() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("SET LOCAL enable_seqscan = off"))
        rows: list[Sequence[Transfer]] = []

        async def run() -> None:
            rows.append(await read(session))

        plan = await plan_of(session, run)
        return plan, rows[0]


def _assert_reads_only_its_rows(plan: Plan, bound: int) -> None:
    if plan.nodes:
        assert "Seq Scan" not in plan.lines, plan.lines
        assert plan.rows_read("transfers") <= bound, plan.describe()
        return
    # A SCAN of transfers (or an alias of it, transfers_1 …) reads the whole table.
    assert not any(re.match(r"SCAN transfers(_\d+)?( |$)", line) for line in plan.lines), plan
    # Each history index searched as one range bounded at both ends: the account and
    # the ids below the page's keyset (not the account alone, filtering every id).
    for index in HISTORY_INDEXES:
        assert any(f"{index} (" in line and "=? AND id<?)" in line for line in plan.lines), plan


@pytest.mark.parametrize("deep", [False, True], ids=["first page", "keyset page"])
async def test_an_account_history_page_reads_only_its_rows(
    sessions: async_sessionmaker[AsyncSession], deep: bool
) -> None:
    _, account, middle = await _ledger(sessions)
    before = middle if deep else None

    plan, rows = await _plan(
        sessions,
        lambda s: TransferRepository(s).history(account, limit=PAGE + 1, before_id=before),
    )

    assert len(rows) == PAGE + 1
    # Two index ranges of a page each, then the page by primary key.
    _assert_reads_only_its_rows(plan, bound=3 * (PAGE + 1))


@pytest.mark.parametrize("deep", [False, True], ids=["first page", "keyset page"])
async def test_an_owners_recent_transfers_page_reads_only_its_rows(
    sessions: async_sessionmaker[AsyncSession], deep: bool
) -> None:
    owner, _, middle = await _ledger(sessions)
    before = middle if deep else None

    plan, rows = await _plan(
        sessions,
        lambda s: ActivityRepository(s).recent_for_owner(owner, limit=PAGE, before_id=before),
    )

    assert len(rows) == PAGE
    # Per owned account (2), two index ranges of a page each; the ids by primary key.
    _assert_reads_only_its_rows(plan, bound=2 * 2 * PAGE * 2 + PAGE)


async def test_keyset_pages_walk_an_account_history_and_an_owners_transfers_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    owner, account, _ = await _ledger(sessions)
    async with sessions() as session:
        every = await session.execute(
            text(
                "SELECT id, source_account_id, destination_account_id FROM transfers "
                "ORDER BY id DESC"
            )
        )
        rows = list(every)
        history, recent = TransferRepository(session), ActivityRepository(session)
        walked: dict[str, list[int]] = {"history": [], "recent": []}
        for name in walked:
            before = None
            while True:
                if name == "history":
                    page = await history.history(account, limit=7, before_id=before)
                else:
                    page = await recent.recent_for_owner(owner, limit=7, before_id=before)
                walked[name] += [t.id for t in page]
                if len(page) < 7:
                    break
                before = page[-1].id
    assert walked["history"] == [i for i, s, d in rows if account in (s, d)]
    assert walked["recent"] == [i for i, s, d in rows if {s, d} & {1, 2}]
