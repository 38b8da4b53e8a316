"""Sums over money are exact on both engines, past 2**63 - 1 (issue 10, defect 1)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import AccountService, DashboardService, LedgerAuditor, UserService
from services.validation import MAX_AMOUNT


async def test_the_audit_adds_up_more_money_than_a_64_bit_integer_holds(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # The three legal calls: SQLite's SUM() overflowed on the deposits total.
    user = await UserService(sessions).register("big@example.com", "Big")
    accounts = AccountService(sessions)
    account = await accounts.open(user.id, "EUR")
    await accounts.deposit(account.id, MAX_AMOUNT)
    await accounts.withdraw(account.id, MAX_AMOUNT)
    await accounts.deposit(account.id, 1)

    report = await LedgerAuditor(sessions).verify()

    assert report.ok, report.problems
    assert (report.deposits, report.withdrawals, report.balances_total) == (
        MAX_AMOUNT + 1,
        MAX_AMOUNT,
        1,
    )


async def test_the_audit_adds_up_balances_that_together_pass_64_bits(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    user = await UserService(sessions).register("full@example.com", "Full")
    accounts = AccountService(sessions)
    for _ in range(3):
        account = await accounts.open(user.id, "EUR")
        await accounts.deposit(account.id, MAX_AMOUNT)

    report = await LedgerAuditor(sessions).verify()

    assert report.ok, report.problems
    assert report.balances_total == report.deposits == 3 * MAX_AMOUNT


async def test_the_dashboard_totals_pass_64_bits(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    user = await UserService(sessions).register("dash@example.com", "Dash")
    accounts = AccountService(sessions)
    first = await accounts.open(user.id, "EUR")
    second = await accounts.open(user.id, "EUR")
    await accounts.deposit(first.id, MAX_AMOUNT)
    await accounts.withdraw(first.id, MAX_AMOUNT)
    await accounts.deposit(first.id, MAX_AMOUNT)
    await accounts.deposit(second.id, MAX_AMOUNT)

    (summary,) = (await DashboardService(sessions).for_user(user.id)).summary

    assert (summary.balance, summary.received, summary.sent) == (
        2 * MAX_AMOUNT,
        3 * MAX_AMOUNT,
        MAX_AMOUNT,
    )
