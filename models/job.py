"""A unit of background work, leased to one worker at a time."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Entity, TimestampMixin, UTCDateTime, utcnow

KIND_MAX_LENGTH = 100
LEASE_OWNER_MAX_LENGTH = 200
# The jobs a claim may take: the predicate of the partial index ix_jobs_claimable.
OPEN_STATUSES_SQL = "status IN ('queued', 'running')"


class JobStatus(StrEnum):
    """Where a job is in its life: queued -> running -> done, or back to queued, or dead."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"


class Job(TimestampMixin, Entity):
    """A job of `kind` with a JSON `payload`.

    A worker takes a job by writing itself into `lease_owner` until `lease_expires_at`;
    `attempts` counts claims, so (id, lease_owner, attempts) names one lease and a worker
    whose lease was taken over cannot complete or fail the job afterwards.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'done', 'dead')", name="status_known"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        CheckConstraint("max_attempts >= 1", name="max_attempts_positive"),
        CheckConstraint(
            "status <> 'running' OR (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)",
            name="running_has_lease",
        ),
        # The claim walks this index in (run_at, id) order and stops after its batch.
        # Partial: done and dead jobs, which pile up for ever, are not in it, so a claim
        # costs the same however long the history grows. Queries must repeat
        # OPEN_STATUSES_SQL with literal values for either planner to use the index.
        Index(
            "ix_jobs_claimable",
            "run_at",
            "id",
            postgresql_where=text(OPEN_STATUSES_SQL),
            sqlite_where=text(OPEN_STATUSES_SQL),
        ),
    )

    kind: Mapped[str] = mapped_column(String(KIND_MAX_LENGTH))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(
        String(16), default=JobStatus.QUEUED, server_default=JobStatus.QUEUED.value
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    max_attempts: Mapped[int] = mapped_column(Integer, default=5, server_default="5")
    run_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(LEASE_OWNER_MAX_LENGTH))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return (
            f"Job(id={self.id!r}, kind={self.kind!r}, status={self.status!r}, "
            f"attempts={self.attempts!r})"
        )
