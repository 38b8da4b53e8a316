"""Use case: a durable job queue in the ledger's own database.

Jobs are rows. A worker claims a batch by leasing it (owner + expiry) in one atomic
statement, then completes or fails each job; both are refused once the lease has been
taken over, so a worker that stalled past its lease cannot overwrite the job's newer
state. Delivery is at least once: handlers must be idempotent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from db import engine_settings
from db.wakeups import wake_after_commit
from models import JobStatus, utcnow
from models.job import LEASE_OWNER_MAX_LENGTH
from repositories import JobRepository, NewJob
from services import validation
from services.backoff import Backoff
from services.errors import InvalidInput
from services.results import ClaimedJob, JobRecord, JobStats
from services.transactions import Sessions, run_in_transaction

Clock = Callable[[], datetime]

ERROR_MAX_LENGTH: Final = 2000
MAX_ATTEMPTS_LIMIT: Final = 1000
CLAIM_LIMIT: Final = 1000


def describe_error(error: BaseException | str) -> str:
    """The text kept in `last_error`: the exception's type and message, bounded."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text if len(text) <= ERROR_MAX_LENGTH else text[: ERROR_MAX_LENGTH - 1] + "…"


async def _one_statement(session: AsyncSession) -> None:
    """Mark the transaction as one statement. On PostgreSQL that statement is atomic by
    itself: run it in autocommit and it costs one round trip instead of three (BEGIN,
    it, COMMIT), which is most of a claim. SQLite's BEGIN IMMEDIATE costs no round trip
    to a server and stays. Behind a transaction pooler the statement and lock timeouts
    are set at each BEGIN (SET LOCAL), which autocommit would skip: it stays too."""
    bind = session.bind
    if bind is None or bind.dialect.name != "postgresql":
        return
    settings = engine_settings(bind if isinstance(bind, AsyncEngine) else bind.engine)
    if settings is not None and settings.pooled_by_transaction:
        return
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def _one_owner(jobs: Sequence[ClaimedJob]) -> str | None:
    owners = {job.owner for job in jobs}
    if len(owners) > 1:
        raise InvalidInput("a batch of jobs must be leased to one owner")
    return next(iter(owners), None)


class JobQueue:
    """Enqueue, claim, complete and fail jobs; every method is its own short transaction.

    `clock` is the time the queue believes it is (tests move it to expire leases);
    times are compared in SQL against values computed here, not against the
    database's NOW(), which SQLite and PostgreSQL spell and store differently.
    """

    def __init__(
        self,
        sessions: Sessions,
        *,
        clock: Clock = utcnow,
        retry: Backoff | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self.retry = retry if retry is not None else Backoff()

    @property
    def sessions(self) -> Sessions:
        """The session factory this queue works with."""
        return self._sessions

    def now(self) -> datetime:
        """The queue's current time."""
        return self._clock()

    async def enqueue(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        run_at: datetime | None = None,
        max_attempts: int = 5,
        session: AsyncSession | None = None,
    ) -> JobRecord:
        """Add a job. With `session`, it joins that session's transaction (an outbox write)
        and commits or rolls back with it; without, it commits on its own. Idle workers
        are woken when that transaction commits."""
        job_kind = validation.job_kind(kind)
        data, encoded = validation.job_payload_json(payload)
        attempts = validation.bounded_int(max_attempts, "max_attempts", MAX_ATTEMPTS_LIMIT)
        due = None if run_at is None else validation.aware_datetime(run_at, "run_at")

        async def work(s: AsyncSession) -> JobRecord:
            now = self._clock()
            when = now if due is None else due
            (job_id,) = await self._insert(
                s, [NewJob(job_kind, data, when, attempts, encoded)], now
            )
            return JobRecord(
                id=job_id,
                kind=job_kind,
                payload=data,
                status=JobStatus.QUEUED,
                attempts=0,
                max_attempts=attempts,
                run_at=when,
                lease_owner=None,
                lease_expires_at=None,
                last_error=None,
                created_at=now,
                updated_at=now,
                finished_at=None,
            )

        if session is not None:
            return await work(session)
        return await run_in_transaction(self._sessions, work)

    async def enqueue_many(
        self,
        jobs: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        run_at: datetime | None = None,
        max_attempts: int = 5,
        session: AsyncSession | None = None,
    ) -> list[int]:
        """Add `(kind, payload)` jobs in one INSERT; their ids, in the order given.

        Every job is checked before any is written; `session` works as for `enqueue`.
        """
        if isinstance(jobs, str | bytes) or not isinstance(jobs, Sequence):
            raise InvalidInput("jobs must be a sequence of (kind, payload) pairs")
        attempts = validation.bounded_int(max_attempts, "max_attempts", MAX_ATTEMPTS_LIMIT)
        due = None if run_at is None else validation.aware_datetime(run_at, "run_at")
        kinds: dict[object, str] = {}
        checked: list[tuple[str, dict[str, Any], str]] = []
        for job in jobs:
            if not isinstance(job, tuple) or len(job) != 2:
                raise InvalidInput("jobs must be a sequence of (kind, payload) pairs")
            kind, payload = job
            # A bulk enqueue mostly repeats a few kinds: check each once.
            valid = kinds.get(kind) if isinstance(kind, str) else None
            if valid is None:
                valid = kinds[kind] = validation.job_kind(kind)
            checked.append((valid, *validation.job_payload_json(payload)))
        if not checked:
            return []

        async def work(s: AsyncSession) -> list[int]:
            now = self._clock()
            when = now if due is None else due
            new = [NewJob(kind, data, when, attempts, text) for kind, data, text in checked]
            return await self._insert(s, new, now)

        if session is not None:
            return await work(session)
        return await run_in_transaction(self._sessions, work)

    @staticmethod
    async def _insert(session: AsyncSession, jobs: list[NewJob], now: datetime) -> list[int]:
        ids = await JobRepository(session).add_many(jobs, now=now)
        wake_after_commit(session)
        return ids

    async def claim(self, worker_id: str, *, limit: int, lease_seconds: float) -> list[ClaimedJob]:
        """Lease up to `limit` due jobs (or jobs whose lease expired) to `worker_id`.

        One statement, one round trip, whatever `limit` is; concurrent claimers never
        get the same job (FOR UPDATE SKIP LOCKED on PostgreSQL, BEGIN IMMEDIATE on SQLite).
        """
        owner = validation.text(worker_id, "worker id", LEASE_OWNER_MAX_LENGTH, required=True)
        assert owner is not None
        batch = validation.bounded_int(limit, "limit", CLAIM_LIMIT)
        duration = timedelta(seconds=validation.seconds(lease_seconds, "lease_seconds"))

        async def work(session: AsyncSession) -> list[ClaimedJob]:
            await _one_statement(session)
            now = self._clock()
            jobs = await JobRepository(session).claim(
                owner, now=now, limit=batch, lease_until=now + duration
            )
            return [ClaimedJob(*row) for row in jobs]

        return await run_in_transaction(self._sessions, work)

    async def complete(self, job: ClaimedJob, *, session: AsyncSession | None = None) -> bool:
        """Mark the job done. False (and nothing changed) if this lease no longer holds it.

        With `session`, the completion joins that transaction: the job's effect and its
        completion then commit together, or, if the lease was lost, not at all.
        """

        async def work(s: AsyncSession) -> bool:
            return await JobRepository(s).finish(job.lease, now=self._clock())

        if session is not None:
            return await work(session)
        return await run_in_transaction(self._sessions, work)

    async def complete_many(self, jobs: Sequence[ClaimedJob], session: AsyncSession) -> set[int]:
        """Mark `jobs` (all leased to one owner) done in `session`'s transaction, in one
        statement; the ids whose lease still held. The caller rolls back if any is missing,
        or the effects of a job someone else now runs would commit."""
        owner = _one_owner(jobs)
        if owner is None:
            return set()
        leases = [(job.id, job.attempt) for job in jobs]
        return await JobRepository(session).finish_many(owner, leases, now=self._clock())

    async def fail(
        self,
        job: ClaimedJob,
        error: BaseException | str,
        *,
        permanent: bool = False,
        session: AsyncSession | None = None,
    ) -> str | None:
        """Record a failed attempt: queued again after a backoff, or dead on the last
        attempt (or when `permanent`), with the error kept in `last_error`. With `session`,
        in that transaction (a batch records its failures with its completions).

        Returns the job's new status (a JobStatus value), or None if this lease no longer
        holds the job.
        """
        status, _ = await self.record_failure(job, error, permanent=permanent, session=session)
        return status

    async def record_failure(
        self,
        job: ClaimedJob,
        error: BaseException | str,
        *,
        permanent: bool = False,
        session: AsyncSession | None = None,
    ) -> tuple[str | None, datetime | None]:
        """`fail`, also returning when the job runs again (None unless it was queued again)."""
        text = describe_error(error)
        dead = permanent or job.last_attempt

        async def work(s: AsyncSession) -> tuple[str | None, datetime | None]:
            now = self._clock()
            repo = JobRepository(s)
            if dead:
                buried = await repo.bury(job.lease, now=now, error=text)
                return (JobStatus.DEAD if buried else None), None
            run_at = now + timedelta(seconds=self.retry.delay(job.attempt))
            if await repo.reschedule(job.lease, now=now, run_at=run_at, error=text):
                return JobStatus.QUEUED, run_at
            return None, None

        if session is not None:
            return await work(session)
        return await run_in_transaction(self._sessions, work)

    async def extend(self, job: ClaimedJob, lease_seconds: float) -> bool:
        """Renew the lease for another `lease_seconds` from now; False if it was lost."""
        return job.id in await self.extend_many([job], lease_seconds)

    async def extend_many(self, jobs: Sequence[ClaimedJob], lease_seconds: float) -> set[int]:
        """Renew the leases of `jobs` (one owner's) for `lease_seconds` from now, in one
        statement; the ids whose lease still held."""
        duration = timedelta(seconds=validation.seconds(lease_seconds, "lease_seconds"))
        owner = _one_owner(jobs)
        if owner is None:
            return set()
        leases = [(job.id, job.attempt) for job in jobs]

        async def work(session: AsyncSession) -> set[int]:
            await _one_statement(session)
            now = self._clock()
            return await JobRepository(session).extend_many(
                owner, leases, now=now, lease_until=now + duration
            )

        return await run_in_transaction(self._sessions, work)

    async def release(self, job: ClaimedJob) -> bool:
        """Hand the job back unfinished (a worker shutting down): queued again at once,
        and this claim does not count as an attempt. False if the lease was lost."""

        async def work(session: AsyncSession) -> bool:
            return await JobRepository(session).release(job.lease, now=self._clock())

        return await run_in_transaction(self._sessions, work)

    async def get(self, job_id: int) -> JobRecord | None:
        """The job with this id, or None."""
        validation.identifier(job_id, "job id")

        async def work(session: AsyncSession) -> JobRecord | None:
            job = await JobRepository(session).get(job_id)
            return None if job is None else JobRecord.of(job)

        return await run_in_transaction(self._sessions, work, read_only=True)

    async def dead(self, *, limit: int = 10) -> list[JobRecord]:
        """The most recently failed dead jobs, newest first, with their errors."""
        count = validation.bounded_int(limit, "limit", CLAIM_LIMIT)

        async def work(session: AsyncSession) -> list[JobRecord]:
            jobs = await JobRepository(session).latest(JobStatus.DEAD, limit=count)
            return [JobRecord.of(job) for job in jobs]

        return await run_in_transaction(self._sessions, work, read_only=True)

    async def stats(self) -> JobStats:
        """Jobs by status, in one read-only query."""

        async def work(session: AsyncSession) -> JobStats:
            counts = await JobRepository(session).status_counts(now=self._clock())
            return JobStats(
                queued=counts.counts.get(JobStatus.QUEUED, 0),
                running=counts.counts.get(JobStatus.RUNNING, 0),
                done=counts.counts.get(JobStatus.DONE, 0),
                dead=counts.counts.get(JobStatus.DEAD, 0),
                due=counts.due,
                expired_leases=counts.expired_leases,
            )

        return await run_in_transaction(self._sessions, work, read_only=True)
