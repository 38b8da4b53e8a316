"""Queries over the job queue: the batch insert, the atomic claim, lease-checked updates."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    FromClause,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import aliased

from db.sqlite_one_hop import DEFERRED
from db.wakeups import JOBS_CHANNEL
from models import Job, JobStatus, UTCDateTime
from repositories.base import Repository

_INSERT_UNNEST: Final = text(
    "INSERT INTO jobs (kind, payload, status, attempts, max_attempts, run_at, created_at,"
    " updated_at)"
    " SELECT t.kind, CAST(t.payload AS json), 'queued', 0, t.max_attempts, t.run_at, :now, :now"
    " FROM unnest(CAST(:kinds AS varchar[]), CAST(:payloads AS text[]),"
    " CAST(:run_ats AS timestamptz[]), CAST(:max_attempts AS integer[]))"
    " WITH ORDINALITY AS t(kind, payload, run_at, max_attempts, n)"
    " ORDER BY t.n"
    " RETURNING id, pg_notify(:channel, '')"
)

# Must match the predicate of the partial index ix_jobs_claimable (models/job.py).
OPEN_STATUSES: Final = (JobStatus.QUEUED, JobStatus.RUNNING)


class NewJob(NamedTuple):
    """A job to insert."""

    kind: str
    payload: Mapping[str, Any]
    run_at: datetime
    max_attempts: int
    payload_json: str | None = None  # the payload as JSON text, when the caller has it


class PerIdJobs(NamedTuple):
    """Jobs of one kind, one per id of something just written, payload `{key: id}`."""

    kind: str
    key: str
    max_attempts: int


class JobLease(NamedTuple):
    """One lease on a job. `attempt` tells two leases of the same worker apart."""

    job_id: int
    owner: str
    attempt: int


def _claim_statement() -> Any:
    candidate = aliased(Job)
    now = bindparam("now", type_=Job.__table__.c.run_at.type)
    open_statuses: list[ColumnElement[str]] = [
        literal_column(f"'{s.value}'") for s in OPEN_STATUSES
    ]
    claimable = (
        select(candidate.id)
        .where(
            # Literal, not bound: only a predicate the planner can see implies the
            # partial index's WHERE (a parameter could be anything).
            candidate.status.in_(open_statuses),
            # A running job's run_at is when it was due, so always <= now.
            candidate.run_at <= now,
            or_(
                and_(candidate.status == JobStatus.QUEUED, candidate.run_at <= now),
                and_(candidate.status == JobStatus.RUNNING, candidate.lease_expires_at < now),
            ),
        )
        .order_by(candidate.run_at, candidate.id)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(skip_locked=True)
    )
    return (
        update(Job)
        .where(Job.id.in_(claimable))
        .values(
            status=JobStatus.RUNNING,
            lease_owner=bindparam("owner"),
            lease_expires_at=bindparam("lease_until", type_=Job.__table__.c.run_at.type),
            attempts=Job.attempts + 1,
            updated_at=now,
        )
        .returning(
            Job.id,
            Job.kind,
            Job.payload,
            Job.attempts,
            Job.max_attempts,
            Job.lease_owner,
            Job.lease_expires_at,
            Job.run_at,
        )
        .execution_options(synchronize_session=False)
    )


class StatusCounts(NamedTuple):
    """Jobs per status, plus the queued ones that are due and the expired leases."""

    counts: dict[str, int]
    due: int
    expired_leases: int


class JobRepository(Repository[Job]):
    """Jobs. Every state change of a leased job is checked against its lease in SQL."""

    model = Job

    async def add_many(self, jobs: Sequence[NewJob], *, now: datetime) -> list[int]:
        """Insert `jobs` in one statement; their ids, in order.

        PostgreSQL: INSERT ... SELECT FROM unnest() of one array per column, whatever the
        count, and the same statement sends NOTIFY on the jobs channel (pg_notify in
        RETURNING: no extra round trip; the server folds a transaction's identical
        notifications into one and delivers it at commit). SQLite: SQLAlchemy's
        "insertmanyvalues", one multi-row INSERT per 1,000 rows, compiled once and cached;
        the ORM's add_all() would send one INSERT per row.
        """
        if not jobs:
            return []
        table = cast(Table, Job.__table__)
        if self.session.get_bind().dialect.name == "postgresql":
            return await self._add_many_unnest(jobs, now)
        rows = [
            {
                "kind": job.kind,
                "payload": dict(job.payload),
                "status": JobStatus.QUEUED.value,
                "attempts": 0,
                "max_attempts": job.max_attempts,
                "run_at": job.run_at,
                "created_at": now,
                "updated_at": now,
            }
            for job in jobs
        ]
        # SQLAlchemy would send SQLite one INSERT per row to keep RETURNING in order. One
        # statement's rows get increasing rowids in VALUES order (the writer is alone),
        # so sorting the ids restores that order.
        result = await self.session.execute(insert(table).returning(table.c.id), rows)
        return sorted(row[0] for row in result)

    async def _add_many_unnest(self, jobs: Sequence[NewJob], now: datetime) -> list[int]:
        # One statement whatever the count: four arrays, unnested server-side, instead of
        # eight parameters per row. ORDER BY the ordinality makes nextval() hand out ids
        # in the given order, so the sorted ids line up with `jobs`.
        result = await self.session.execute(
            _INSERT_UNNEST,
            {
                "kinds": [job.kind for job in jobs],
                "payloads": [
                    job.payload_json
                    if job.payload_json is not None
                    else json.dumps(dict(job.payload), allow_nan=False)
                    for job in jobs
                ],
                "run_ats": [job.run_at for job in jobs],
                "max_attempts": [job.max_attempts for job in jobs],
                "now": now,
                "channel": JOBS_CHANNEL,
            },
        )
        return sorted(row[0] for row in result)

    async def add_per_id(self, jobs: PerIdJobs, ids: Sequence[int], *, now: datetime) -> None:
        """Insert one queued job per id, its payload `{jobs.key: id}`, due `now`, in id order.

        One INSERT … SELECT whose ids arrive as one parameter (a JSON array read by
        json_each on SQLite, an array unnested on PostgreSQL, where it also sends NOTIFY
        on the jobs channel) and whose payloads the database builds: no payload to
        serialise per row. The caller wakes this process's workers (`wake_after_commit`).
        """
        if not ids:
            return
        params: dict[str, Any] = {
            "kind": jobs.kind,
            "key": jobs.key,
            "max_attempts": jobs.max_attempts,
            "now": now,
        }
        if self.session.get_bind().dialect.name == "postgresql":
            # With NOTIFY on the jobs channel, as add_many sends it (delivered at commit).
            params |= {"ids": list(ids), "channel": JOBS_CHANNEL}
            await self.session.execute(_ADD_PER_ID_PG, params)
        else:
            params["ids"] = json.dumps(list(ids))
            await self.session.execute(_ADD_PER_ID_SQLITE, params)

    async def claim(
        self, owner: str, *, now: datetime, limit: int, lease_until: datetime
    ) -> list[tuple[int, str, dict[str, Any], int, int, str, datetime]]:
        """Lease up to `limit` claimable jobs to `owner` in one statement; oldest run_at first.

        Claimable: queued and due, or running under an expired lease. The inner SELECT
        walks the partial index ix_jobs_claimable in order and stops after `limit` rows,
        without sorting the backlog. On PostgreSQL it locks its rows FOR UPDATE SKIP
        LOCKED, so concurrent claimers take disjoint batches without waiting on each
        other. SQLite's compiler drops that clause; there the caller's BEGIN IMMEDIATE
        makes the whole claim one writer's. The statement is built once (every value a
        parameter) and returns plain rows, in the field order of services.results.ClaimedJob
        (id, kind, payload, attempt, max_attempts, owner, lease_expires_at): a worker claims
        many times a second.
        """
        result = await self.session.execute(
            _CLAIM, {"owner": owner, "now": now, "limit": limit, "lease_until": lease_until}
        )
        rows = [tuple(row) for row in result]
        # RETURNING comes back in no particular order; run_at, last, only sorts them.
        rows.sort(key=lambda row: (row[7], row[0]))
        return [row[:7] for row in rows]

    def _held(self, lease: JobLease) -> ColumnElement[bool]:
        return and_(
            Job.id == lease.job_id,
            Job.status == JobStatus.RUNNING,
            Job.lease_owner == lease.owner,
            Job.attempts == lease.attempt,
        )

    async def _update_held(self, lease: JobLease, values: Mapping[str, Any]) -> bool:
        statement = (
            update(Job)
            .where(self._held(lease))
            .values(**values)
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        )
        return (await self.session.scalar(statement)) is not None

    async def finish(self, lease: JobLease, *, now: datetime) -> bool:
        """Mark the job done if `lease` still holds it; False if it does not."""
        return await self._update_held(
            lease,
            {
                "status": JobStatus.DONE,
                "lease_owner": None,
                "lease_expires_at": None,
                "finished_at": now,
                "updated_at": now,
            },
        )

    async def finish_many(
        self, owner: str, leases: Sequence[tuple[int, int]], *, now: datetime
    ) -> set[int]:
        """Mark done, in one statement, each job whose (id, attempt) lease `owner` still
        holds; the ids it did mark."""
        if not leases:
            return set()
        rows = await self.session.execute(
            _FINISH_HELD, {"owner": owner, "leases": list(leases), "now": now}
        )
        return {row[0] for row in rows}

    async def extend_many(
        self,
        owner: str,
        leases: Sequence[tuple[int, int]],
        *,
        now: datetime,
        lease_until: datetime,
    ) -> set[int]:
        """Move the expiry of every lease `owner` still holds to `lease_until`; their ids."""
        if not leases:
            return set()
        rows = await self.session.execute(
            _EXTEND_HELD,
            {"owner": owner, "leases": list(leases), "now": now, "lease_until": lease_until},
        )
        return {row[0] for row in rows}

    async def reschedule(
        self, lease: JobLease, *, now: datetime, run_at: datetime, error: str
    ) -> bool:
        """Queue the job again for `run_at`, keeping `error`, if `lease` still holds it."""
        return await self._update_held(
            lease,
            {
                "status": JobStatus.QUEUED,
                "lease_owner": None,
                "lease_expires_at": None,
                "run_at": run_at,
                "last_error": error,
                "updated_at": now,
            },
        )

    async def bury(self, lease: JobLease, *, now: datetime, error: str) -> bool:
        """Mark the job dead with `error` if `lease` still holds it."""
        return await self._update_held(
            lease,
            {
                "status": JobStatus.DEAD,
                "lease_owner": None,
                "lease_expires_at": None,
                "last_error": error,
                "finished_at": now,
                "updated_at": now,
            },
        )

    async def extend(self, lease: JobLease, *, now: datetime, lease_until: datetime) -> bool:
        """Move the lease's expiry to `lease_until` if `lease` still holds the job."""
        return await self._update_held(lease, {"lease_expires_at": lease_until, "updated_at": now})

    async def release(self, lease: JobLease, *, now: datetime) -> bool:
        """Give the job back unfinished: queued again at once, the claim not counted."""
        return await self._update_held(
            lease,
            {
                "status": JobStatus.QUEUED,
                "lease_owner": None,
                "lease_expires_at": None,
                "attempts": Job.attempts - 1,
                "updated_at": now,
            },
        )

    async def status_counts(self, *, now: datetime) -> StatusCounts:
        """Counts by status in one statement (one group per status, served by the index)."""
        due = func.sum(case((Job.run_at <= now, 1), else_=0))
        expired = func.sum(case((Job.lease_expires_at < now, 1), else_=0))
        rows = await self.session.execute(
            select(Job.status, func.count(), due, expired).group_by(Job.status)
        )
        counts: dict[str, int] = {}
        due_total = expired_total = 0
        for status, count, due_count, expired_count in rows:
            counts[str(status)] = int(count)
            if status == JobStatus.QUEUED:
                due_total = int(due_count or 0)
            if status == JobStatus.RUNNING:
                expired_total = int(expired_count or 0)
        return StatusCounts(counts=counts, due=due_total, expired_leases=expired_total)

    async def latest(self, status: JobStatus, *, limit: int) -> Sequence[Job]:
        """The most recently updated jobs in `status`, newest first."""
        query = (
            select(Job)
            .where(Job.status == status)
            .order_by(Job.updated_at.desc(), Job.id.desc())
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()


_CLAIM: Final = _claim_statement()


def _update_held_statement(**values: Any) -> Any:
    # Built once, like the claim: the leases are one expanding parameter.
    return (
        update(Job)
        .where(
            Job.status == JobStatus.RUNNING,
            Job.lease_owner == bindparam("owner"),
            tuple_(Job.id, Job.attempts).in_(bindparam("leases", expanding=True)),
        )
        .values(**values)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    )


_TIME: Final = Job.__table__.c.run_at.type
_FINISH_HELD: Final = _update_held_statement(
    status=JobStatus.DONE,
    lease_owner=None,
    lease_expires_at=None,
    finished_at=bindparam("now", type_=_TIME),
    updated_at=bindparam("now", type_=_TIME),
)
_EXTEND_HELD: Final = _update_held_statement(
    lease_expires_at=bindparam("lease_until", type_=_TIME),
    updated_at=bindparam("now", type_=_TIME),
)


_JOB_COLUMNS: Final = (
    "kind",
    "payload",
    "status",
    "attempts",
    "max_attempts",
    "run_at",
    "created_at",
    "updated_at",
)


def per_id_jobs_insert(
    payload: ColumnElement[Any], ids: FromClause, order: ColumnElement[Any]
) -> Any:
    """INSERT … SELECT of one queued job per row of `ids` in `order`, its payload
    `payload`, due `:now`: `add_per_id`'s statement on each engine, and the jobs part of
    `TransferRepository.insert_and_apply`'s one statement on PostgreSQL."""
    now = bindparam("now", type_=UTCDateTime())
    # DEFERRED: nothing is read back, so the one-hop SQLite adapter sends it with the
    # transaction's next statement or its COMMIT rather than crossing for it alone.
    return (
        insert(cast(Table, Job.__table__))
        .prefix_with(DEFERRED)
        .from_select(
            list(_JOB_COLUMNS),
            select(
                bindparam("kind", type_=String),
                payload,
                literal(JobStatus.QUEUED.value, type_=String),
                literal(0, type_=Integer),
                bindparam("max_attempts", type_=Integer),
                now,
                now,
                now,
            )
            .select_from(ids)
            .order_by(order),
        )
    )


_sqlite_ids = func.json_each(bindparam("ids", type_=String)).table_valued("value", "key")
_ADD_PER_ID_SQLITE = per_id_jobs_insert(
    func.json_object(bindparam("key", type_=String), _sqlite_ids.c.value),
    _sqlite_ids,
    _sqlite_ids.c.key,
)
_pg_ids = (
    func.unnest(bindparam("ids", type_=ARRAY(BigInteger)))
    .table_valued("id", with_ordinality="position")
    .render_derived(name="i")
)
_ADD_PER_ID_PG = per_id_jobs_insert(
    func.json_build_object(bindparam("key", type_=String), _pg_ids.c.id),
    _pg_ids,
    _pg_ids.c.position,
).returning(func.pg_notify(bindparam("channel", type_=String), literal("", type_=String)))
