"""AccountService: open, deposit, withdraw, balance and history."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import AccountService, UserService
from services.errors import (
    AccountNotFound,
    InsufficientFunds,
    InvalidAmount,
    InvalidCurrency,
    InvalidId,
    InvalidInput,
    UserNotFound,
)
from tests.support.ledger import open_account, snapshot


async def test_a_new_account_is_empty_and_belongs_to_its_owner(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    user = await UserService(sessions).register("owner@example.com", "Owner")
    account = await AccountService(sessions).open(user.id, "EUR")
    assert (account.owner_id, account.currency, account.balance) == (user.id, "EUR", 0)
    assert await AccountService(sessions).for_owner(user.id) == [account]


async def test_opening_an_account_for_an_unknown_user_fails(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(UserNotFound):
        await AccountService(sessions).open(999, "EUR")
    assert (await snapshot(sessions)).balances == {}


@pytest.mark.parametrize("currency", ["eur", "EURO", "", "€€€", "XXX", None, 978])
async def test_unknown_currencies_are_refused(
    sessions: async_sessionmaker[AsyncSession], currency: object
) -> None:
    user = await UserService(sessions).register("c@example.com", "C")
    with pytest.raises(InvalidCurrency):
        await AccountService(sessions).open(user.id, currency)  # type: ignore[arg-type]


async def test_deposit_then_withdraw_changes_the_balance_and_records_history(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    accounts = AccountService(sessions)
    account = await open_account(sessions)
    deposit = await accounts.deposit(account.id, 10_000)
    withdrawal = await accounts.withdraw(account.id, 2_500, description="rent")
    assert await accounts.balance(account.id) == 7_500
    assert (deposit.kind, withdrawal.kind) == ("deposit", "withdrawal")
    page = await accounts.history(account.id)
    assert [t.id for t in page.items] == [withdrawal.id, deposit.id]
    assert page.items[0].description == "rent"
    assert page.next_before is None


async def test_withdrawing_more_than_the_balance_changes_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    account = await open_account(sessions, balance=100)
    before = await snapshot(sessions)
    with pytest.raises(InsufficientFunds) as raised:
        await AccountService(sessions).withdraw(account.id, 101)
    assert (raised.value.balance, raised.value.amount) == (100, 101)
    assert await snapshot(sessions) == before


@pytest.mark.parametrize("amount", [0, -1, 1.5, "10", True, None, 2**63, 10**30, float("nan")])
async def test_amounts_that_are_not_positive_64_bit_ints_are_refused(
    sessions: async_sessionmaker[AsyncSession], amount: object
) -> None:
    account = await open_account(sessions, balance=100)
    before = await snapshot(sessions)
    with pytest.raises(InvalidAmount):
        await AccountService(sessions).deposit(account.id, amount)  # type: ignore[arg-type]
    assert await snapshot(sessions) == before


async def test_a_deposit_that_would_overflow_64_bits_is_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    account = await open_account(sessions, balance=2**63 - 10)
    before = await snapshot(sessions)
    with pytest.raises(InvalidAmount):
        await AccountService(sessions).deposit(account.id, 10)
    assert await snapshot(sessions) == before


@pytest.mark.parametrize("account_id", [0, -1, "x", 2**63, True])
async def test_malformed_account_ids_are_refused(
    sessions: async_sessionmaker[AsyncSession], account_id: object
) -> None:
    with pytest.raises(InvalidId):
        await AccountService(sessions).balance(account_id)  # type: ignore[arg-type]


async def test_an_unknown_account_is_account_not_found_everywhere(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    accounts = AccountService(sessions)
    for call in (
        accounts.balance(4242),
        accounts.history(4242),
        accounts.deposit(4242, 1),
        accounts.withdraw(4242, 1),
    ):
        with pytest.raises(AccountNotFound):
            await call
    assert (await snapshot(sessions)).transfers == 0


async def test_history_pages_back_with_next_before_until_the_end(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    accounts = AccountService(sessions)
    account = await open_account(sessions)
    made = [(await accounts.deposit(account.id, i + 1)).id for i in range(7)]
    ids: list[int] = []
    before: int | None = None
    while True:
        page = await accounts.history(account.id, limit=3, before=before)
        ids.extend(t.id for t in page.items)
        if page.next_before is None:
            break
        before = page.next_before
    assert ids == sorted(made, reverse=True)


@pytest.mark.parametrize("limit", [0, 501, -3])
async def test_history_page_size_is_bounded(
    sessions: async_sessionmaker[AsyncSession], limit: int
) -> None:
    account = await open_account(sessions)
    with pytest.raises(InvalidInput):
        await AccountService(sessions).history(account.id, limit=limit)
