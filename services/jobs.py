"""Use case: a durable job queue in the ledger's own database.

Jobs are rows. A worker claims a batch by leasing it (owner + expiry) in one atomic
statement, then completes or fails each job; both are refused once the lease has been
taken over, so a worker that stalled past its lease cannot overwrite the job's newer
state. Delivery is at least once: handlers must be idempotent.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from models import Job, JobStatus, utcnow
from models.job import KIND_MAX_LENGTH, LEASE_OWNER_MAX_LENGTH
from repositories import JobLease, JobRepository
from services import validation
from services.errors import InvalidInput
from services.transactions import Sessions, run_in_transaction

Clock = Callable[[], datetime]

ERROR_MAX_LENGTH: Final = 2000
MAX_ATTEMPTS_LIMIT: Final = 1000
CLAIM_LIMIT: Final = 1000


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as stored."""

    id: int
    kind: str
    payload: dict[str, Any]
    status: str
    attempts: int
    max_attempts: int
    run_at: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobRecord:
        """Copy the loaded columns of a Job."""
        return cls(
            id=job.id,
            kind=job.kind,
            payload=dict(job.payload),
            status=job.status,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            run_at=job.run_at,
            lease_owner=job.lease_owner,
            lease_expires_at=job.lease_expires_at,
            last_error=job.last_error,
            created_at=job.created_at,
            updated_at=job.updated_at,
            finished_at=job.finished_at,
        )


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job leased to one worker: what its handler needs, and the lease that proves it."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    owner: str
    lease_expires_at: datetime

    @property
    def lease(self) -> JobLease:
        """The lease: (job, owner, attempt). A later claim, even by the same owner, differs."""
        return JobLease(self.id, self.owner, self.attempt)

    @property
    def last_attempt(self) -> bool:
        """Whether a failure now makes the job dead."""
        return self.attempt >= self.max_attempts

    @classmethod
    def of(cls, job: Job) -> ClaimedJob:
        """Copy a freshly claimed Job."""
        assert job.lease_owner is not None
        assert job.lease_expires_at is not None
        return cls(
            id=job.id,
            kind=job.kind,
            payload=dict(job.payload),
            attempt=job.attempts,
            max_attempts=job.max_attempts,
            owner=job.lease_owner,
            lease_expires_at=job.lease_expires_at,
        )


@dataclass(frozen=True, slots=True)
class JobStats:
    """How many jobs are in each state. `due` of the queued can run now; `expired_leases`
    of the running belong to workers that stopped renewing them and will be reclaimed."""

    queued: int
    running: int
    done: int
    dead: int
    due: int
    expired_leases: int

    @property
    def total(self) -> int:
        """All jobs."""
        return self.queued + self.running + self.done + self.dead


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits between half and all of
    min(cap, base * 2**(n-1)) seconds, so jobs that failed together do not retry together."""

    base_seconds: float = 1.0
    cap_seconds: float = 300.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.base_seconds <= self.cap_seconds:
            raise InvalidInput("retry backoff needs 0 <= base_seconds <= cap_seconds")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before the run after failed attempt number `attempt` (from 1)."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2.0 ** max(attempt - 1, 0))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)


def describe_error(error: BaseException | str) -> str:
    """The text kept in `last_error`: the exception's type and message, bounded."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text if len(text) <= ERROR_MAX_LENGTH else text[: ERROR_MAX_LENGTH - 1] + "…"


def _payload(value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidInput("a job payload must be a mapping with string keys")
    try:
        # Round-trip now, so a payload that cannot be stored fails here and not at commit.
        loaded: dict[str, Any] = json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"a job payload must be JSON: {exc}") from None
    return loaded


def _positive_seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 10**7:
        raise InvalidInput(
            f"{what} must be a positive number of seconds, got {validation.shown(value)}"
        )
    return float(value)


def _bounded_int(value: object, what: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidInput(
            f"{what} must be a whole number from 1 to {maximum}, got {validation.shown(value)}"
        )
    return value


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
        retry: RetryPolicy | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self.retry = retry if retry is not None else RetryPolicy()

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
        and commits or rolls back with it; without, it commits on its own."""
        job_kind = validation.text(kind, "job kind", KIND_MAX_LENGTH, required=True)
        assert job_kind is not None
        data = _payload(payload)
        attempts = _bounded_int(max_attempts, "max_attempts", MAX_ATTEMPTS_LIMIT)
        if run_at is not None and (not isinstance(run_at, datetime) or run_at.tzinfo is None):
            raise InvalidInput("run_at must be a timezone-aware datetime")

        async def work(s: AsyncSession) -> JobRecord:
            now = self._clock()
            job = Job(
                kind=job_kind,
                payload=data,
                status=JobStatus.QUEUED,
                attempts=0,
                max_attempts=attempts,
                run_at=run_at if run_at is not None else now,
                created_at=now,
                updated_at=now,
            )
            return JobRecord.of(await JobRepository(s).add(job))

        if session is not None:
            return await work(session)
        return await run_in_transaction(self._sessions, work)

    async def claim(self, worker_id: str, *, limit: int, lease_seconds: float) -> list[ClaimedJob]:
        """Lease up to `limit` due jobs (or jobs whose lease expired) to `worker_id`.

        One statement, one round trip, whatever `limit` is; concurrent claimers never
        get the same job (FOR UPDATE SKIP LOCKED on PostgreSQL, BEGIN IMMEDIATE on SQLite).
        """
        owner = validation.text(worker_id, "worker id", LEASE_OWNER_MAX_LENGTH, required=True)
        assert owner is not None
        batch = _bounded_int(limit, "limit", CLAIM_LIMIT)
        duration = timedelta(seconds=_positive_seconds(lease_seconds, "lease_seconds"))

        async def work(session: AsyncSession) -> list[ClaimedJob]:
            now = self._clock()
            jobs = await JobRepository(session).claim(
                owner, now=now, limit=batch, lease_until=now + duration
            )
            return [ClaimedJob.of(job) for job in jobs]

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

    async def fail(
        self, job: ClaimedJob, error: BaseException | str, *, permanent: bool = False
    ) -> JobStatus | None:
        """Record a failed attempt: queued again after a backoff, or dead on the last
        attempt (or when `permanent`), with the error kept in `last_error`.

        Returns the job's new status, or None if this lease no longer holds the job.
        """
        text = describe_error(error)
        dead = permanent or job.last_attempt

        async def work(session: AsyncSession) -> bool:
            now = self._clock()
            repo = JobRepository(session)
            if dead:
                return await repo.bury(job.lease, now=now, error=text)
            run_at = now + timedelta(seconds=self.retry.delay(job.attempt))
            return await repo.reschedule(job.lease, now=now, run_at=run_at, error=text)

        if not await run_in_transaction(self._sessions, work):
            return None
        return JobStatus.DEAD if dead else JobStatus.QUEUED

    async def extend(self, job: ClaimedJob, lease_seconds: float) -> bool:
        """Renew the lease for another `lease_seconds` from now; False if it was lost."""
        duration = timedelta(seconds=_positive_seconds(lease_seconds, "lease_seconds"))

        async def work(session: AsyncSession) -> bool:
            now = self._clock()
            return await JobRepository(session).extend(
                job.lease, now=now, lease_until=now + duration
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
        count = _bounded_int(limit, "limit", CLAIM_LIMIT)

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
