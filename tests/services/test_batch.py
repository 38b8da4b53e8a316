"""The batch core: a batch gives each request the outcome it would get on its own."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import (
    AccountService,
    LedgerAuditor,
    TransferRecord,
    TransferRequest,
    TransferService,
)
from services.transfer_core import Outcome
from tests.support.ledger import open_account
from tests.support.pgbouncer import through_pgbouncer

pytestmark = through_pgbouncer

UNKNOWN = 987_654


async def _ledger(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    a = await open_account(sessions, balance=100)
    b = await open_account(sessions, balance=50)
    c = await open_account(sessions, currency="USD")
    return {"a": a.id, "b": b.id, "c": c.id}


def _requests(ids: dict[str, int], key: str) -> list[TransferRequest]:
    a, b, c = ids["a"], ids["b"], ids["c"]
    return [
        TransferRequest.of(a, b, 60),  # ok, a: 40
        TransferRequest.of(a, b, 60),  # insufficient now
        TransferRequest.of(b, a, 100, idempotency_key=key),  # ok, b: 10 (it had 110)
        TransferRequest.of(b, a, 100, idempotency_key=key),  # same key, same request
        TransferRequest.of(b, a, 5, idempotency_key=key),  # same key, another request
        TransferRequest.of(a, UNKNOWN, 1),  # unknown account
        TransferRequest.of(a, c, 1),  # currency mismatch
        TransferRequest.of(a, b, 140),  # ok: the whole balance, a: 0
        TransferRequest.of(None, a, 7),  # deposit
        TransferRequest.of(a, None, 8),  # insufficient withdrawal
    ]


def _describe(outcome: Outcome, ids: dict[str, int]) -> str:
    """An outcome with account ids replaced by the ledger's letters."""
    if isinstance(outcome, Exception):
        return type(outcome).__name__
    names = {v: k for k, v in ids.items()}
    source = names.get(outcome.source_account_id or 0, "-")
    destination = names.get(outcome.destination_account_id or 0, "-")
    return f"{source}->{destination}:{outcome.amount}"


async def test_a_mixed_batch_matches_applying_the_requests_one_by_one(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    transfers = TransferService(sessions)
    batch_ids = await _ledger(sessions)
    batched = await transfers.transfer_many(_requests(batch_ids, "batch-key"))

    one_ids = await _ledger(sessions)
    single = [(await transfers.transfer_many([r]))[0] for r in _requests(one_ids, "single-key")]

    expected = [
        "a->b:60",
        "InsufficientFunds",
        "b->a:100",
        "b->a:100",
        "IdempotencyConflict",
        "AccountNotFound",
        "CurrencyMismatch",
        "a->b:140",
        "-->a:7",
        "InsufficientFunds",
    ]
    assert [_describe(o, batch_ids) for o in batched] == expected
    assert [_describe(o, one_ids) for o in single] == expected
    # The repeated key inside the batch got the very same transfer as its first use.
    assert isinstance(batched[2], TransferRecord)
    assert batched[3] == replace(batched[2], replayed=True)
    accounts = AccountService(sessions)
    for ids in (batch_ids, one_ids):
        assert [await accounts.balance(ids[n]) for n in "abc"] == [7, 150, 0]
    assert (await LedgerAuditor(sessions).verify()).ok


async def test_an_empty_batch_does_nothing(sessions: async_sessionmaker[AsyncSession]) -> None:
    assert await TransferService(sessions).transfer_many([]) == []
