"""TransferService: atomic transfers; every refusal leaves the ledger unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import AccountService, LedgerAuditor, TransferService
from services.errors import (
    AccountNotFound,
    CurrencyMismatch,
    InsufficientFunds,
    InvalidAmount,
    InvalidId,
    InvalidText,
    SameAccount,
)
from tests.support.ledger import open_account, snapshot
from tests.support.pgbouncer import through_pgbouncer

pytestmark = through_pgbouncer


async def test_a_transfer_moves_money_and_records_one_row(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=10_000)
    b = await open_account(sessions)
    record = await TransferService(sessions).transfer(a.id, b.id, 2_500, description="lunch")
    accounts = AccountService(sessions)
    assert (await accounts.balance(a.id), await accounts.balance(b.id)) == (7_500, 2_500)
    assert (record.kind, record.amount, record.currency) == ("transfer", 2_500, "EUR")
    assert (await accounts.history(b.id)).items[0] == record
    assert (await LedgerAuditor(sessions).verify()).ok


async def test_transferring_the_whole_balance_leaves_exactly_zero(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=500)
    b = await open_account(sessions)
    await TransferService(sessions).transfer(a.id, b.id, 500)
    assert await AccountService(sessions).balance(a.id) == 0


async def test_insufficient_funds_changes_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=100)
    b = await open_account(sessions)
    before = await snapshot(sessions)
    with pytest.raises(InsufficientFunds):
        await TransferService(sessions).transfer(a.id, b.id, 101)
    assert await snapshot(sessions) == before


async def test_accounts_of_different_currencies_cannot_trade(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=100, currency="EUR")
    b = await open_account(sessions, currency="USD")
    before = await snapshot(sessions)
    with pytest.raises(CurrencyMismatch):
        await TransferService(sessions).transfer(a.id, b.id, 1)
    assert await snapshot(sessions) == before


async def test_a_transfer_to_the_same_account_is_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=100)
    before = await snapshot(sessions)
    with pytest.raises(SameAccount):
        await TransferService(sessions).transfer(a.id, a.id, 1)
    assert await snapshot(sessions) == before


@pytest.mark.parametrize("missing", ["source", "destination"])
async def test_an_unknown_account_on_either_side_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], missing: str
) -> None:
    a = await open_account(sessions, balance=100)
    before = await snapshot(sessions)
    ids = (9999, a.id) if missing == "source" else (a.id, 9999)
    with pytest.raises(AccountNotFound) as raised:
        await TransferService(sessions).transfer(*ids, 1)
    assert raised.value.account_id == 9999
    assert await snapshot(sessions) == before


@pytest.mark.parametrize("amount", [0, -5, 2.5, "1", False, 2**63])
async def test_invalid_amounts_are_refused_before_any_io(
    sessions: async_sessionmaker[AsyncSession], amount: object
) -> None:
    a = await open_account(sessions, balance=100)
    b = await open_account(sessions)
    with pytest.raises(InvalidAmount):
        await TransferService(sessions).transfer(a.id, b.id, amount)  # type: ignore[arg-type]


async def test_a_transfer_needs_both_accounts(sessions: async_sessionmaker[AsyncSession]) -> None:
    a = await open_account(sessions, balance=100)
    with pytest.raises(InvalidId):
        await TransferService(sessions).transfer(a.id, None, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("description", "x" * 501),
        ("description", "nul\x00byte"),
        ("idempotency_key", ""),
        ("idempotency_key", "k" * 129),
        ("idempotency_key", " padded "),
    ],
)
async def test_overlong_or_control_character_text_is_refused(
    sessions: async_sessionmaker[AsyncSession], field: str, value: str
) -> None:
    a = await open_account(sessions, balance=100)
    b = await open_account(sessions)
    text_fields: dict[str, Any] = {field: value}
    with pytest.raises(InvalidText):
        await TransferService(sessions).transfer(a.id, b.id, 1, **text_fields)


async def test_sql_in_a_description_is_stored_as_plain_text(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=100)
    b = await open_account(sessions)
    text = "'; DROP TABLE accounts; --"
    record = await TransferService(sessions).transfer(a.id, b.id, 1, description=text)
    assert (await AccountService(sessions).history(a.id)).items[0].description == text
    assert record.description == text


async def test_insufficient_funds_names_the_money_in_the_account_s_currency(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=100)
    b = await open_account(sessions)
    with pytest.raises(InsufficientFunds, match=r"holds 1\.00 EUR, less than the 1\.50 EUR") as e:
        await TransferService(sessions).transfer(a.id, b.id, 150)
    assert (e.value.balance, e.value.amount, e.value.currency) == (100, 150, "EUR")
