"""The transfer.completed handler: one notification per transfer, for the receiving owner."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import Notification
from services import AccountService, JobQueue, TransferNotifier, TransferService
from services.currencies import format_amount
from services.errors import PermanentJobFailure
from services.results import ClaimedJob
from services.transactions import run_in_transaction
from tests.support.ledger import open_account
from tests.support.pgbouncer import through_pgbouncer

pytestmark = through_pgbouncer


async def _claim_all(sessions: async_sessionmaker[AsyncSession]) -> list[ClaimedJob]:
    return await JobQueue(sessions).claim("test", limit=100, lease_seconds=60)


async def _run(sessions: async_sessionmaker[AsyncSession], job: ClaimedJob) -> None:
    async def work(session: AsyncSession) -> None:
        await TransferNotifier()(job, session)

    await run_in_transaction(sessions, work)


async def _notifications(sessions: async_sessionmaker[AsyncSession]) -> list[Notification]:
    async with sessions() as session:
        return list((await session.scalars(select(Notification).order_by(Notification.id))).all())


async def test_the_receiving_owner_is_notified_once_however_often_the_job_runs(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=5_000)
    b = await open_account(sessions)
    (deposit_job,) = await _claim_all(sessions)
    transfer = await TransferService(sessions).transfer(a.id, b.id, 1_050)
    (transfer_job,) = await _claim_all(sessions)
    for _ in range(3):  # a retry, or a second worker after a lease expired
        await _run(sessions, transfer_job)
    await _run(sessions, deposit_job)
    notes = await _notifications(sessions)
    assert [(n.user_id, n.message) for n in notes] == [
        (b.owner_id, f"account #{b.id} received 10.50 EUR from account #{a.id}"),
        (a.owner_id, f"50.00 EUR deposited into account #{a.id}"),
    ]
    assert notes[0].transfer_id == transfer.id


async def test_a_withdrawal_notifies_no_one(sessions: async_sessionmaker[AsyncSession]) -> None:
    a = await open_account(sessions)
    accounts = AccountService(sessions)
    await accounts.deposit(a.id, 100)
    await accounts.withdraw(a.id, 40)
    for job in await _claim_all(sessions):
        await _run(sessions, job)
    assert [n.message for n in await _notifications(sessions)] == [
        f"1.00 EUR deposited into account #{a.id}"
    ]


@pytest.mark.parametrize(
    "payload", [{}, {"transfer_id": "7"}, {"transfer_id": 0}, {"transfer_id": 2**64}]
)
async def test_a_malformed_payload_is_a_permanent_failure(
    sessions: async_sessionmaker[AsyncSession], payload: dict[str, object]
) -> None:
    await JobQueue(sessions).enqueue("transfer.completed", payload)
    (job,) = await _claim_all(sessions)
    with pytest.raises(PermanentJobFailure):
        await _run(sessions, job)


async def test_a_job_about_a_missing_transfer_is_a_permanent_failure(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await JobQueue(sessions).enqueue("transfer.completed", {"transfer_id": 424242})
    (job,) = await _claim_all(sessions)
    with pytest.raises(PermanentJobFailure, match="424242 does not exist"):
        await _run(sessions, job)


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (1050, "EUR", "10.50 EUR"),
        (7, "EUR", "0.07 EUR"),
        (500, "JPY", "500 JPY"),
        (1, "KWD", "0.001 KWD"),
        (-1050, "EUR", "-10.50 EUR"),
    ],
)
def test_amounts_are_shown_in_the_currency_s_major_unit(
    amount: int, currency: str, text: str
) -> None:
    assert format_amount(amount, currency) == text
