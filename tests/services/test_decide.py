"""The transfer rules as a pure function: `_decide` against in-memory balances, no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from models import Transfer
from repositories import LockedAccount
from services.callers import SYSTEM_SCOPE
from services.errors import (
    AccountNotFound,
    CurrencyMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
)
from services.results import TransferRecord
from services.transfer_core import TransferRequest, _decide
from services.validation import MAX_AMOUNT

EUR_A, EUR_B, USD = 1, 2, 3
WHEN = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def accounts(a: int = 100, b: int = 0, usd: int = 0) -> dict[int, LockedAccount]:
    return {
        EUR_A: LockedAccount(EUR_A, "EUR", a),
        EUR_B: LockedAccount(EUR_B, "EUR", b),
        USD: LockedAccount(USD, "USD", usd),
    }


def move(
    source: int | None, destination: int | None, amount: int, key: str | None = None
) -> TransferRequest:
    return TransferRequest.of(source, destination, amount, idempotency_key=key)


def committed(request: TransferRequest, transfer_id: int = 77) -> Transfer:
    return Transfer(
        id=transfer_id,
        source_account_id=request.source_id,
        destination_account_id=request.destination_id,
        amount=request.amount,
        currency="EUR",
        idempotency_key=request.idempotency_key,
        idempotency_scope=None if request.idempotency_key is None else request.idempotency_scope,
        description=None,
        created_at=WHEN,
    )


def test_an_accepted_transfer_moves_both_balances_and_becomes_a_row() -> None:
    plan = _decide([move(EUR_A, EUR_B, 30, "k")], accounts(), {})
    assert plan.outcomes == [None]
    assert plan.balances == {EUR_A: 70, EUR_B: 30, USD: 0}
    ((index, row),) = plan.accepted
    assert index == 0
    assert (row.source_account_id, row.destination_account_id, row.amount) == (EUR_A, EUR_B, 30)
    assert (row.currency, row.idempotency_key) == ("EUR", "k")


def test_a_deposit_takes_the_currency_of_its_account() -> None:
    plan = _decide([move(None, USD, 5)], accounts(), {})
    ((_, row),) = plan.accepted
    assert row.currency == "USD"
    assert plan.balances[USD] == 5


def test_a_withdrawal_takes_the_currency_of_its_account() -> None:
    plan = _decide([move(USD, None, 5)], accounts(usd=5), {})
    ((_, row),) = plan.accepted
    assert row.currency == "USD"
    assert plan.balances[USD] == 0


def test_an_unknown_account_is_refused_on_either_side() -> None:
    plan = _decide([move(EUR_A, 9, 1), move(9, EUR_A, 1), move(None, 9, 1)], accounts(), {})
    assert [type(o) for o in plan.outcomes] == [AccountNotFound] * 3
    assert plan.accepted == []
    assert plan.balances == {EUR_A: 100, EUR_B: 0, USD: 0}


def test_different_currencies_are_refused() -> None:
    plan = _decide([move(EUR_A, USD, 1)], accounts(), {})
    assert isinstance(plan.outcomes[0], CurrencyMismatch)
    assert plan.accepted == []


def test_the_whole_balance_may_leave_but_not_one_unit_more() -> None:
    plan = _decide([move(EUR_A, EUR_B, 101), move(EUR_A, EUR_B, 100)], accounts(), {})
    refused = plan.outcomes[0]
    assert isinstance(refused, InsufficientFunds)
    assert (refused.account_id, refused.balance, refused.amount) == (EUR_A, 100, 101)
    assert plan.outcomes[1] is None
    assert plan.balances[EUR_A] == 0


def test_a_balance_may_reach_the_largest_amount_but_not_pass_it() -> None:
    plan = _decide([move(None, EUR_B, 2), move(None, EUR_B, 1)], accounts(b=MAX_AMOUNT - 1), {})
    assert isinstance(plan.outcomes[0], InvalidAmount)
    assert plan.outcomes[1] is None
    assert plan.balances[EUR_B] == MAX_AMOUNT


def test_requests_see_the_balances_left_by_earlier_ones() -> None:
    plan = _decide(
        [move(EUR_A, EUR_B, 60), move(EUR_A, EUR_B, 60), move(EUR_B, EUR_A, 60)],
        accounts(),
        {},
    )
    assert plan.outcomes[0] is None
    assert isinstance(plan.outcomes[1], InsufficientFunds)
    assert plan.outcomes[2] is None
    assert plan.balances == {EUR_A: 100, EUR_B: 0, USD: 0}
    assert [index for index, _ in plan.accepted] == [0, 2]


def test_a_key_already_committed_for_the_same_movement_returns_the_original() -> None:
    request = move(EUR_A, EUR_B, 10, "paid")
    earlier = committed(request)
    plan = _decide([request], accounts(a=0), {(SYSTEM_SCOPE, "paid"): earlier})
    assert plan.outcomes == [replace(TransferRecord.of(earlier), replayed=True)]
    assert plan.accepted == []
    assert plan.balances[EUR_A] == 0


def test_a_key_already_committed_for_another_movement_is_a_conflict() -> None:
    earlier = committed(move(EUR_A, EUR_B, 10, "paid"))
    plan = _decide([move(EUR_A, EUR_B, 11, "paid")], accounts(), {(SYSTEM_SCOPE, "paid"): earlier})
    conflict = plan.outcomes[0]
    assert isinstance(conflict, IdempotencyConflict)
    assert conflict.key == "paid"
    assert plan.accepted == []


def test_a_key_repeated_in_the_batch_for_the_same_movement_repeats_the_first() -> None:
    plan = _decide([move(EUR_A, EUR_B, 10, "k"), move(EUR_A, EUR_B, 10, "k")], accounts(), {})
    assert plan.repeats == [(1, 0)]
    assert [index for index, _ in plan.accepted] == [0]
    assert plan.balances[EUR_A] == 90


def test_a_key_repeated_in_the_batch_for_another_movement_is_a_conflict() -> None:
    plan = _decide([move(EUR_A, EUR_B, 10, "k"), move(EUR_A, EUR_B, 20, "k")], accounts(), {})
    assert isinstance(plan.outcomes[1], IdempotencyConflict)
    assert plan.repeats == []
    assert plan.balances[EUR_A] == 90


def test_a_refused_request_does_not_take_its_key() -> None:
    # The first fails for funds, so the second with the same key is judged afresh.
    plan = _decide([move(EUR_A, EUR_B, 500, "k"), move(EUR_A, EUR_B, 50, "k")], accounts(), {})
    assert isinstance(plan.outcomes[0], InsufficientFunds)
    assert plan.outcomes[1] is None
    assert plan.repeats == []


def test_requests_without_keys_never_repeat_each_other() -> None:
    plan = _decide([move(EUR_A, EUR_B, 10), move(EUR_A, EUR_B, 10)], accounts(), {})
    assert [index for index, _ in plan.accepted] == [0, 1]
    assert plan.balances[EUR_A] == 80
