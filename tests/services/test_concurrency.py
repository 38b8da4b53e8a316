"""Many concurrent transfers: money is conserved, nothing goes negative, nothing is locked."""

from __future__ import annotations

import asyncio
import random

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import AccountService, LedgerAuditor, TransferService
from services.errors import InsufficientFunds
from tests.support.ledger import open_account
from tests.support.pgbouncer import through_pgbouncer

pytestmark = through_pgbouncer


async def test_opposing_concurrent_transfers_conserve_money_without_deadlock_or_lock_errors(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    opening = 5_000
    accounts = [await open_account(sessions, balance=opening) for _ in range(6)]
    ids = [a.id for a in accounts]
    rng = random.Random(7)
    transfers = TransferService(sessions)
    plan: list[tuple[int, int, int]] = []
    for _ in range(120):
        # Pairs in both directions (A->B while B->A): the classic deadlock shape.
        x, y = rng.sample(ids, 2)
        amount = rng.randint(1, 3_000)
        plan += [(x, y, amount), (y, x, amount)]

    async def attempt(source: int, destination: int, amount: int) -> str:
        try:
            await transfers.transfer(source, destination, amount)
        except InsufficientFunds:
            return "insufficient"
        return "ok"

    # Any other error (database is locked, deadlock, DatabaseBusy) propagates and fails here.
    outcomes = await asyncio.gather(*(attempt(*p) for p in plan))

    assert len(outcomes) == 240
    assert outcomes.count("ok") > 0
    balances = {i: await AccountService(sessions).balance(i) for i in ids}
    assert sum(balances.values()) == opening * len(ids)
    # Every acknowledged transfer moved its money exactly once, and no refused one did:
    # a lost update or a half-applied transfer would show here.
    expected = dict.fromkeys(ids, opening)
    for (source, destination, amount), outcome in zip(plan, outcomes, strict=True):
        if outcome == "ok":
            expected[source] -= amount
            expected[destination] += amount
    assert balances == expected
    report = await LedgerAuditor(sessions).verify()
    assert report.ok, report.problems


async def test_concurrent_withdrawals_never_overdraw(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    account = await open_account(sessions, balance=1_000)
    accounts = AccountService(sessions)

    async def withdraw() -> bool:
        try:
            await accounts.withdraw(account.id, 300)
        except InsufficientFunds:
            return False
        return True

    results = await asyncio.gather(*(withdraw() for _ in range(30)))
    assert results.count(True) == 3
    assert await accounts.balance(account.id) == 100
