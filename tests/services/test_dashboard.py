"""The dashboard: concurrent reads, each in its own session, bounded, and correct."""

from __future__ import annotations

from contextlib import AsyncExitStack
from functools import partial
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import EngineMonitor, pool_status
from services import (
    AccountService,
    Caller,
    Counterparty,
    CurrencySummary,
    DashboardService,
    JobQueue,
    TransferNotifier,
    TransferService,
    UserService,
)
from services.errors import InvalidId, InvalidInput, OperationTimeout, UserNotFound
from services.transactions import run_in_transaction
from tests.support.jobs import StatementLog
from tests.support.ledger import open_account


async def _run_all_jobs(sessions: async_sessionmaker[AsyncSession]) -> None:
    queue, notifier = JobQueue(sessions), TransferNotifier()
    for job in await queue.claim("test", limit=100, lease_seconds=60):
        await run_in_transaction(sessions, partial(notifier, job))
        await queue.complete(job)


async def test_the_dashboard_shows_what_was_written(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    users, accounts = UserService(sessions), AccountService(sessions)
    transfers = TransferService(sessions)
    ada = await users.register("ada@example.com", "Ada")
    bob = await users.register("bob@example.com", "Bob")
    ada_eur = await accounts.open(ada.id, "EUR")
    ada_usd = await accounts.open(ada.id, "USD")
    bob_eur = await accounts.open(bob.id, "EUR")
    t1 = await accounts.deposit(ada_eur.id, 1_000)
    t2 = await accounts.deposit(ada_usd.id, 500)
    t3 = await transfers.transfer(ada_eur.id, bob_eur.id, 300)
    t4 = await transfers.transfer(bob_eur.id, ada_eur.id, 100)
    await accounts.deposit(bob_eur.id, 50)  # Bob's alone: not on Ada's page
    await _run_all_jobs(sessions)

    page = await DashboardService(sessions).for_user(ada.id)

    assert page.user == ada
    assert page.accounts == tuple(await accounts.for_owner(ada.id))
    assert [a.balance for a in page.accounts] == [800, 500]
    assert [t.id for t in page.recent_transfers] == [t4.id, t3.id, t2.id, t1.id]
    assert page.counterparties == (Counterparty(bob_eur.id, "EUR", bob.id, "Bob"),)
    assert page.summary == (
        CurrencySummary("EUR", accounts=1, balance=800, received=1_100, sent=300, movements=3),
        CurrencySummary("USD", accounts=1, balance=500, received=500, sent=0, movements=1),
    )
    assert [n.message for n in page.notifications] == [
        f"account #{ada_eur.id} received 1.00 EUR from account #{bob_eur.id}",
        f"5.00 USD deposited into account #{ada_usd.id}",
        f"10.00 EUR deposited into account #{ada_eur.id}",
    ]


async def test_recent_transfers_are_the_newest_few(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    user = await UserService(sessions).register("few@example.com", "Few")
    accounts = AccountService(sessions)
    account = await accounts.open(user.id, "EUR")
    made = [await accounts.deposit(account.id, n) for n in range(1, 6)]
    page = await DashboardService(sessions).for_user(user.id, recent=2)
    assert [t.id for t in page.recent_transfers] == [made[4].id, made[3].id]


async def test_a_user_without_accounts_gets_an_empty_page(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    user = await UserService(sessions).register("empty@example.com", "Empty")
    page = await DashboardService(sessions).for_user(user.id)
    assert (page.accounts, page.recent_transfers, page.summary, page.notifications) == (
        (),
        (),
        (),
        (),
    )


@pytest.mark.parametrize("bound", [1, 2, 5])
async def test_each_query_has_its_own_session_and_at_most_the_bound_run_at_once(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine, bound: int
) -> None:
    users, accounts = UserService(sessions), AccountService(sessions)
    user = await users.register(f"bound{bound}@example.com", "Bound")
    other = await users.register(f"other{bound}@example.com", "Other")
    mine, theirs = await accounts.open(user.id, "EUR"), await accounts.open(other.id, "EUR")
    await accounts.deposit(mine.id, 10)
    await TransferService(sessions).transfer(mine.id, theirs.id, 5)
    service = DashboardService(sessions, max_concurrency=bound)
    async with AsyncExitStack() as stack:  # warm the pool: no read waits for a connect
        for _ in range(5):
            await stack.enter_async_context(engine.connect())
    with EngineMonitor(engine) as monitor:
        await service.for_user(user.id)
    # Five concurrent reads, then one for the counterparties: one session each.
    assert monitor.checkouts == 6
    # Each read holds its connection from its first statement, so the first `bound`
    # reads are all checked out before any of them finishes.
    assert monitor.peak_checked_out == bound
    assert pool_status(engine).checked_out == 0


async def test_an_unknown_user_is_user_not_found_with_nothing_left_checked_out(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    with pytest.raises(UserNotFound):
        await DashboardService(sessions).for_user(987_654)
    assert pool_status(engine).checked_out == 0


async def test_a_dashboard_past_its_deadline_cancels_every_query(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    user = await UserService(sessions).register("late@example.com", "Late")
    with pytest.raises(OperationTimeout):
        await DashboardService(sessions).for_user(user.id, timeout=1e-6)
    assert pool_status(engine).checked_out == 0


async def test_the_owners_of_many_accounts_come_from_one_in_query(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    users, accounts = UserService(sessions), AccountService(sessions)
    people = [await users.register(f"owner{n}@example.com", f"Owner {n}") for n in range(4)]
    opened = [await accounts.open(p.id, "EUR") for p in people]
    service = DashboardService(sessions)
    with StatementLog(engine) as log:
        owners = await service.account_owners([a.id for a in opened] + [987_654])
    assert len([s for s in log.statements if s.upper().startswith("SELECT")]) == 1
    assert owners == {
        a.id: Counterparty(a.id, "EUR", p.id, p.name) for a, p in zip(opened, people, strict=True)
    }
    with StatementLog(engine) as log:
        assert await service.account_owners([]) == {}
    assert log.statements == []


async def test_a_user_sees_the_owners_of_their_own_and_their_counterparties_accounts_only(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    mine = await open_account(sessions, balance=100)
    partner = await open_account(sessions)
    stranger = await open_account(sessions)
    await TransferService(sessions).transfer(mine.id, partner.id, 5)
    as_me = DashboardService(sessions, caller=Caller.user(mine.owner_id))
    owners = await as_me.account_owners([mine.id, partner.id, stranger.id])
    assert set(owners) == {mine.id, partner.id}


@pytest.mark.parametrize("bound", [0, 101, 2.5, True, "4"])
def test_max_concurrency_must_be_a_whole_number_from_1_to_100(
    sessions: async_sessionmaker[AsyncSession], bound: object
) -> None:
    with pytest.raises(InvalidInput, match="max_concurrency"):
        DashboardService(sessions, max_concurrency=bound)  # type: ignore[arg-type]


# Iterating a non-collection would be a TypeError deep in the service, not InvalidId.
@pytest.mark.parametrize("account_ids", [None, 7, 1.5, "12", object()])
async def test_account_owners_refuses_what_is_not_a_collection_of_ids(
    sessions: async_sessionmaker[AsyncSession], account_ids: Any
) -> None:
    with pytest.raises(InvalidId, match="collection of ids"):
        await DashboardService(sessions).account_owners(account_ids)
