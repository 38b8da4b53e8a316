"""The transactional outbox: a transfer.completed job exists exactly when its transfer does."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from models import Job, Transfer
from services import TRANSFER_COMPLETED, AccountService, TransferRequest, TransferService
from services.errors import InsufficientFunds
from services.transactions import run_in_transaction
from services.transfer_core import apply_transfers
from tests.support.jobs import StatementLog
from tests.support.ledger import open_account
from tests.support.pgbouncer import through_pgbouncer

pytestmark = through_pgbouncer


async def _outbox(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, int]]:
    """(kind, transfer id) of every job, in id order."""
    async with sessions() as session:
        jobs = (await session.scalars(select(Job).order_by(Job.id))).all()
    return [(job.kind, job.payload["transfer_id"]) for job in jobs]


async def _transfer_ids(sessions: async_sessionmaker[AsyncSession]) -> list[int]:
    async with sessions() as session:
        return list((await session.scalars(select(Transfer.id).order_by(Transfer.id))).all())


async def test_every_committed_transfer_has_exactly_one_transfer_completed_job(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=500)  # a deposit: a transfer too
    b = await open_account(sessions)
    await TransferService(sessions).transfer(a.id, b.id, 200)
    await AccountService(sessions).withdraw(b.id, 50)
    transfers = await _transfer_ids(sessions)
    assert len(transfers) == 3
    assert await _outbox(sessions) == [(TRANSFER_COMPLETED, t) for t in transfers]


async def test_a_refused_transfer_enqueues_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=100)
    b = await open_account(sessions)
    before = await _outbox(sessions)
    with pytest.raises(InsufficientFunds):
        await TransferService(sessions).transfer(a.id, b.id, 101)
    assert await _outbox(sessions) == before


async def test_a_rolled_back_transaction_takes_its_outbox_jobs_with_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=100)
    b = await open_account(sessions)
    before_jobs, before_transfers = await _outbox(sessions), await _transfer_ids(sessions)

    async def transfer_then_fail(session: AsyncSession) -> None:
        (outcome,) = await apply_transfers(session, [TransferRequest.of(a.id, b.id, 10)])
        assert not isinstance(outcome, Exception)
        raise RuntimeError("something later in the same transaction failed")

    with pytest.raises(RuntimeError):
        await run_in_transaction(sessions, transfer_then_fail)
    assert await _transfer_ids(sessions) == before_transfers
    assert await _outbox(sessions) == before_jobs


async def test_replaying_an_idempotent_request_enqueues_no_second_job(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=100)
    b = await open_account(sessions)
    service = TransferService(sessions)
    first = await service.transfer(a.id, b.id, 10, idempotency_key="once")
    replay = await service.transfer(a.id, b.id, 10, idempotency_key="once")
    batch = await service.transfer_many(
        [TransferRequest.of(a.id, b.id, 10, idempotency_key="once")]
    )
    assert replay == batch[0] == replace(first, replayed=True)
    assert [t for _, t in await _outbox(sessions)].count(first.id) == 1


async def test_a_batch_enqueues_one_job_per_accepted_transfer_in_one_insert(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    a = await open_account(sessions, balance=100)
    b = await open_account(sessions)
    before = await _outbox(sessions)
    requests = [
        TransferRequest.of(a.id, b.id, 60),
        TransferRequest.of(a.id, b.id, 60),  # insufficient by now
        TransferRequest.of(b.id, a.id, 5),
        TransferRequest.of(None, b.id, 7),
        TransferRequest.of(a.id, b.id, 1, idempotency_key="k"),
        TransferRequest.of(a.id, b.id, 1, idempotency_key="k"),  # repeat inside the batch
    ]
    with StatementLog(engine) as log:
        outcomes = await TransferService(sessions).transfer_many(requests)
    accepted = sorted({o.id for o in outcomes if not isinstance(o, Exception)})
    assert len(accepted) == 4
    assert await _outbox(sessions) == before + [(TRANSFER_COMPLETED, t) for t in accepted]
    # On PostgreSQL the jobs are inserted by the statement that inserts the transfers (a
    # data-modifying WITH), on SQLite by an INSERT of their own: one statement either way.
    inserts = [s for s in log.touching("jobs") if s.upper().startswith(("INSERT", "WITH"))]
    assert len(inserts) == 1
