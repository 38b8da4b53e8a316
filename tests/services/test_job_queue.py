"""The job queue: atomic batch claims, lease-checked transitions, backoff, dead letters."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from models import Job, JobStatus
from services import Backoff, JobQueue
from services.errors import InvalidInput
from tests.support.jobs import FakeClock, StatementLog
from tests.support.pgbouncer import through_pgbouncer

pytestmark = through_pgbouncer


async def _enqueue(queue: JobQueue, count: int, kind: str = "test.kind") -> list[int]:
    return [(await queue.enqueue(kind, {"n": n})).id for n in range(count)]


async def test_an_enqueued_job_is_queued_and_due_now(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = FakeClock()
    job = await JobQueue(sessions, clock=clock).enqueue("mail.send", {"to": "a@b.c"})
    assert (job.kind, job.payload, job.status, job.attempts) == (
        "mail.send",
        {"to": "a@b.c"},
        "queued",
        0,
    )
    assert job.run_at == clock.now
    assert job.max_attempts == 5


async def test_a_claim_leases_a_whole_batch_in_one_statement(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    queue = JobQueue(sessions)
    await _enqueue(queue, 8)
    with StatementLog(engine) as log:
        claimed = await queue.claim("w1", limit=5, lease_seconds=30)
    assert len(claimed) == 5
    assert len(log.statements) == 1
    assert log.statements[0].upper().startswith("UPDATE JOBS")
    assert all(job.owner == "w1" and job.attempt == 1 for job in claimed)


async def test_due_jobs_are_claimed_oldest_first_and_future_ones_wait(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = FakeClock()
    queue = JobQueue(sessions, clock=clock)
    later = await queue.enqueue("k", {}, run_at=clock.now + timedelta(seconds=60))
    second = await queue.enqueue("k", {}, run_at=clock.now - timedelta(seconds=5))
    first = await queue.enqueue("k", {}, run_at=clock.now - timedelta(seconds=10))
    claimed = await queue.claim("w", limit=10, lease_seconds=600)
    assert [job.id for job in claimed] == [first.id, second.id]
    clock.advance(60)
    assert [job.id for job in await queue.claim("w", limit=10, lease_seconds=600)] == [later.id]


async def test_concurrent_claimers_never_get_the_same_job(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    queue = JobQueue(sessions)
    ids = await _enqueue(queue, 60)
    batches = await asyncio.gather(
        *(queue.claim(f"w{n}", limit=7, lease_seconds=30) for n in range(12))
    )
    claimed = [job.id for batch in batches for job in batch]
    assert all(len(batch) <= 7 for batch in batches)
    assert sorted(claimed) == sorted(ids)  # every job once, none twice


async def test_an_unexpired_lease_is_not_reclaimed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = FakeClock()
    queue = JobQueue(sessions, clock=clock)
    await _enqueue(queue, 1)
    await queue.claim("a", limit=1, lease_seconds=30)
    clock.advance(29)
    assert await queue.claim("b", limit=1, lease_seconds=30) == []


async def test_an_expired_lease_is_reclaimed_and_the_stale_holder_cannot_complete(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = FakeClock()
    queue = JobQueue(sessions, clock=clock)
    await _enqueue(queue, 1)
    (stale,) = await queue.claim("a", limit=1, lease_seconds=30)
    clock.advance(31)
    (fresh,) = await queue.claim("b", limit=1, lease_seconds=30)
    assert (fresh.id, fresh.owner, fresh.attempt) == (stale.id, "b", 2)

    assert await queue.complete(stale) is False
    assert await queue.fail(stale, "late failure") is None
    assert await queue.extend(stale, 30) is False
    assert await queue.release(stale) is False
    record = await queue.get(stale.id)
    assert record is not None
    assert (record.status, record.lease_owner, record.last_error) == ("running", "b", None)

    assert await queue.complete(fresh) is True
    record = await queue.get(stale.id)
    assert record is not None
    assert (record.status, record.finished_at) == ("done", clock.now)


async def test_an_older_lease_of_the_same_worker_is_refused_too(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = FakeClock()
    queue = JobQueue(sessions, clock=clock)
    await _enqueue(queue, 1)
    (first,) = await queue.claim("a", limit=1, lease_seconds=30)
    clock.advance(31)
    (second,) = await queue.claim("a", limit=1, lease_seconds=30)
    assert await queue.complete(first) is False
    assert await queue.complete(second) is True


async def test_failures_back_off_exponentially_then_go_dead_with_the_error_kept(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = FakeClock()
    retry = Backoff(base_seconds=10, cap_seconds=1000, rng=random.Random(1))
    queue = JobQueue(sessions, clock=clock, retry=retry)
    job_id = (await queue.enqueue("k", {}, max_attempts=3)).id

    for attempt, ceiling in ((1, 10), (2, 20)):
        (job,) = await queue.claim("w", limit=1, lease_seconds=30)
        assert job.attempt == attempt
        failed_at = clock.now
        assert await queue.fail(job, RuntimeError(f"boom {attempt}")) is JobStatus.QUEUED
        record = await queue.get(job_id)
        assert record is not None
        delay = (record.run_at - failed_at).total_seconds()
        assert ceiling / 2 <= delay <= ceiling  # half the ceiling plus jitter
        assert record.last_error == f"RuntimeError: boom {attempt}"
        clock.advance(delay - 0.001)
        assert await queue.claim("w", limit=1, lease_seconds=30) == []  # not before run_at
        clock.advance(0.001)

    (job,) = await queue.claim("w", limit=1, lease_seconds=30)
    assert job.last_attempt
    assert await queue.fail(job, ValueError("still broken")) is JobStatus.DEAD
    record = await queue.get(job_id)
    assert record is not None
    assert (record.status, record.attempts, record.last_error) == (
        "dead",
        3,
        "ValueError: still broken",
    )
    clock.advance(10_000)
    assert await queue.claim("w", limit=1, lease_seconds=30) == []
    assert [j.id for j in await queue.dead()] == [job_id]


async def test_a_permanent_failure_goes_dead_on_the_first_attempt(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    queue = JobQueue(sessions)
    await _enqueue(queue, 1)
    (job,) = await queue.claim("w", limit=1, lease_seconds=30)
    assert await queue.fail(job, "cannot ever work", permanent=True) is JobStatus.DEAD


async def test_a_released_job_is_queued_again_without_using_up_an_attempt(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    queue = JobQueue(sessions)
    await _enqueue(queue, 1)
    (job,) = await queue.claim("a", limit=1, lease_seconds=30)
    assert await queue.release(job) is True
    (again,) = await queue.claim("b", limit=1, lease_seconds=30)
    assert (again.id, again.attempt) == (job.id, 1)


async def test_extending_a_lease_moves_its_expiry_from_now(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = FakeClock()
    queue = JobQueue(sessions, clock=clock)
    await _enqueue(queue, 1)
    (job,) = await queue.claim("a", limit=1, lease_seconds=30)
    clock.advance(25)
    assert await queue.extend(job, 30) is True
    clock.advance(25)  # 50 s after the claim: expired without the extension
    assert await queue.claim("b", limit=1, lease_seconds=30) == []
    record = await queue.get(job.id)
    assert record is not None
    assert record.lease_expires_at == clock.now + timedelta(seconds=5)


async def test_stats_count_jobs_by_status(sessions: async_sessionmaker[AsyncSession]) -> None:
    clock = FakeClock()
    queue = JobQueue(sessions, clock=clock)
    await _enqueue(queue, 6)
    await queue.enqueue("k", {}, run_at=clock.now + timedelta(hours=1))
    a, b, c, _ = await queue.claim("w", limit=4, lease_seconds=30)
    await queue.complete(a)
    await queue.fail(b, "x", permanent=True)
    expiring = c
    stats = await queue.stats()
    assert (stats.queued, stats.running, stats.done, stats.dead) == (3, 2, 1, 1)
    assert (stats.due, stats.expired_leases, stats.total) == (2, 0, 7)
    clock.advance(31)
    assert (await queue.stats()).expired_leases == 2
    assert await queue.complete(expiring) is True  # still the holder: nobody took it over


async def test_a_job_enqueued_in_a_session_commits_and_rolls_back_with_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    queue = JobQueue(sessions)

    async def enqueue_then_fail(session: AsyncSession) -> None:
        async with session.begin():
            await queue.enqueue("dropped", {}, session=session)
            raise RuntimeError("the caller's transaction fails")

    async with sessions() as session:
        async with session.begin():
            await queue.enqueue("kept", {}, session=session)
        with pytest.raises(RuntimeError):
            await enqueue_then_fail(session)
    async with sessions() as session:
        kinds = (await session.scalars(select(Job.kind))).all()
        assert kinds == ["kept"]
        assert await session.scalar(select(func.count()).select_from(Job)) == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda q: q.enqueue("", {}), "job kind"),
        (lambda q: q.enqueue("k", {"x": {1, 2}}), "JSON"),
        (lambda q: q.enqueue("k", {"x": float("nan")}), "JSON"),
        (lambda q: q.enqueue("k", [1, 2]), "mapping"),
        (lambda q: q.enqueue("k", {}, max_attempts=0), "max_attempts"),
        (lambda q: q.enqueue("k", {}, run_at=q.now().replace(tzinfo=None)), "timezone"),
        (lambda q: q.claim("w", limit=0, lease_seconds=30), "limit"),
        (lambda q: q.claim("w", limit=1, lease_seconds=0), "lease_seconds"),
        (lambda q: q.claim("", limit=1, lease_seconds=1), "worker id"),
    ],
)
async def test_bad_arguments_are_refused_before_any_io(
    sessions: async_sessionmaker[AsyncSession], call: object, message: str
) -> None:
    assert callable(call)
    with pytest.raises(InvalidInput, match=message):
        await call(JobQueue(sessions))


async def test_enqueue_many_inserts_every_job_in_one_statement_in_order(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    queue = JobQueue(sessions)
    with StatementLog(engine) as log:
        ids = await queue.enqueue_many([("k", {"n": n}) for n in range(30)])
    inserts = [s for s in log.touching("jobs") if s.upper().startswith("INSERT")]
    assert len(inserts) == 1
    for n, job_id in enumerate(ids):
        stored = await queue.get(job_id)
        assert stored is not None
        assert (stored.kind, stored.payload, stored.status) == ("k", {"n": n}, "queued")


async def test_enqueue_many_checks_every_job_before_writing_any(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    queue = JobQueue(sessions)
    with pytest.raises(InvalidInput, match="JSON"):
        await queue.enqueue_many([("k", {}), ("k", {"bad": float("nan")}), ("k", {})])
    assert (await queue.stats()).total == 0
