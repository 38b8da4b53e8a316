"""LedgerAuditor: it passes a consistent ledger and names every inconsistency."""

from __future__ import annotations

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import Account, Transfer
from services import LedgerAuditor, TransferService
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
