"""LedgerAuditor: it passes a consistent ledger and names every inconsistency."""

from __future__ import annotations

import asyncio

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import Account, Transfer
from services import AccountService, LedgerAuditor, TransferBatcher, TransferService
from tests.support.ledger import open_account


async def test_an_empty_ledger_is_consistent(sessions: async_sessionmaker[AsyncSession]) -> None:
    report = await LedgerAuditor(sessions).verify()
    assert report.ok
    assert (report.accounts_checked, report.balances_total) == (0, 0)


async def test_a_ledger_built_by_the_services_is_consistent(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=1_000)
    b = await open_account(sessions, balance=10)
    await TransferService(sessions).transfer(a.id, b.id, 300)
    report = await LedgerAuditor(sessions).verify()
    assert report.ok
    assert (report.deposits, report.withdrawals, report.balances_total) == (1_010, 0, 1_010)


async def test_a_balance_changed_behind_the_ledgers_back_is_reported(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=1_000)
    async with sessions() as session, session.begin():
        await session.execute(update(Account).where(Account.id == a.id).values(balance=999))
    report = await LedgerAuditor(sessions).verify()
    assert not report.ok
    assert any(f"account {a.id}: balance 999 but history says 1000" in p for p in report.problems)
    assert any("in total" in p for p in report.problems)


async def test_a_deleted_history_row_is_reported(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=1_000)
    b = await open_account(sessions)
    moved = await TransferService(sessions).transfer(a.id, b.id, 400)
    async with sessions() as session, session.begin():
        await session.execute(delete(Transfer).where(Transfer.id == moved.id))
    report = await LedgerAuditor(sessions).verify()
    assert len([p for p in report.problems if "history says" in p]) == 2


async def test_kept_totals_changed_behind_the_ledgers_back_are_reported(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # The balance still agrees with the history: only the new invariant can catch this.
    a = await open_account(sessions, balance=1_000)
    async with sessions() as session, session.begin():
        await session.execute(
            update(Account)
            .where(Account.id == a.id)
            .values(received_low=Account.received_low + 1, movements=Account.movements + 1)
        )
    report = await LedgerAuditor(sessions).verify()
    assert report.problems == (
        f"account {a.id}: keeps 1001 received, 0 sent, 2 movements; "
        "its transfers add up to 1000, 0, 1",
    )


async def test_kept_totals_agree_with_the_history_of_both_write_paths(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # One user's two accounts (a transfer between them is a leg of each), a stranger, a
    # withdrawal, the batcher and the unbatched service, a total past 32 bits (the carry).
    a = await open_account(sessions, balance=5 * 2**32 - 1)
    b = await open_account(sessions, balance=2**32 + 7)
    transfers = TransferService(sessions)
    await transfers.transfer(a.id, b.id, 2**32 - 3)
    async with TransferBatcher(sessions) as batcher:
        await asyncio.gather(
            batcher.transfer(b.id, a.id, 11),
            batcher.transfer(a.id, b.id, 2**32 + 1),
            batcher.transfer(b.id, a.id, 5),
        )
    await AccountService(sessions).withdraw(b.id, 2**33)
    report = await LedgerAuditor(sessions).verify()
    assert report.ok, report.problems
    assert report.transfers_checked == 7
    async with sessions() as session:
        lows = await session.execute(select(Account.received_low, Account.sent_low))
        assert all(0 <= low < 2**32 for row in lows for low in row)


async def test_the_audit_reports_its_progress_range_by_range(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=10)
    b = await open_account(sessions, balance=10)
    for _ in range(3):
        await TransferService(sessions).transfer(a.id, b.id, 1)
    seen: list[tuple[int, int]] = []
    last = (await AccountService(sessions).history(b.id)).items[0].id

    report = await LedgerAuditor(sessions).verify(
        progress=lambda done, of: seen.append((done, of)), range_size=2
    )

    assert report.ok
    assert report.transfers_checked == 5
    assert seen[-1] == (last, last)
    assert [done for done, _ in seen] == sorted({min(d, last) for d in range(2, last + 2, 2)})
