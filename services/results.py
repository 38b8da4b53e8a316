"""Immutable results returned by the services.

The rule: what a service returns is a plain value (an int balance, a bool) or a frozen,
slotted dataclass declared here and deriving from `Result`, or a tuple, list or dict of
those; never an ORM object, never a repository's row (tests/services/test_results.py
checks every service method's return type). Results are safe to keep after the session
has closed, to share between tasks and to serialise, and they cannot trigger lazy loads
(hidden IO) when a caller touches an attribute.

A result copied from an ORM object uses the one generic `Result.of(source)`; one built
from a query's row takes the row's values in the order of its fields, `Result(*row)`.
Repositories declare no second copy of a result's shape: they return ORM objects, or
plain tuples in the result's field order, and keep their own NamedTuples only for data
that never leaves the services (locked balances, rows about to be inserted, audit sums).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, Self

from models import JobStatus
from repositories import JobLease
from services.callers import Caller

TransferKind = Literal["deposit", "withdrawal", "transfer"]

_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


class Result:
    """Base of every result: `of()` copies what the result declares, nothing else."""

    __slots__ = ()

    @classmethod
    def of(cls, source: object) -> Self:
        """Copy the attributes of `source` (an ORM object) named by this result's fields."""
        names = _FIELD_NAMES.get(cls)
        if names is None:
            declared = fields(cls)  # type: ignore[arg-type]  # every subclass is a dataclass
            # A field marked `copied: False` is the service's own (TransferRecord.replayed),
            # not the source's: it keeps its default.
            names = _FIELD_NAMES[cls] = tuple(
                f.name for f in declared if f.init and f.metadata.get("copied", True)
            )
        return cls(**{name: getattr(source, name) for name in names})


@dataclass(frozen=True, slots=True)
class UserRecord(Result):
    """A registered user; `role` is "user" or "operator" (services/callers.py)."""

    id: int
    email: str
    name: str
    created_at: datetime
    role: str = "user"


@dataclass(frozen=True, slots=True)
class AccountRecord(Result):
    """An account and its balance at the time it was read."""

    id: int
    owner_id: int
    currency: str
    balance: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TransferRecord(Result):
    """A committed money movement."""

    id: int
    source_account_id: int | None
    destination_account_id: int | None
    amount: int
    currency: str
    idempotency_key: str | None
    description: str | None
    created_at: datetime
    # True when an idempotency key made this call return an earlier transfer: nothing moved.
    replayed: bool = field(default=False, metadata={"copied": False})

    @property
    def kind(self) -> TransferKind:
        """deposit (no source), withdrawal (no destination) or transfer."""
        if self.source_account_id is None:
            return "deposit"
        if self.destination_account_id is None:
            return "withdrawal"
        return "transfer"


@dataclass(frozen=True, slots=True)
class HistoryPage(Result):
    """One page of an account's history, newest first.

    Pass `next_before` as `before` to get the next (older) page; it is None on the last one.
    """

    account_id: int
    items: tuple[TransferRecord, ...]
    next_before: int | None


@dataclass(frozen=True, slots=True)
class AuditReport(Result):
    """The auditor's verdict: `ok` when `problems` is empty."""

    accounts_checked: int
    deposits: int
    withdrawals: int
    balances_total: int
    problems: tuple[str, ...] = field(default=())
    transfers_checked: int = 0

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return not self.problems


@dataclass(frozen=True, slots=True)
class NotificationRecord(Result):
    """A notification as stored."""

    id: int
    user_id: int
    transfer_id: int
    message: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CurrencySummary(Result):
    """One currency across the user's accounts. A transfer between two of the user's
    own accounts counts as sent, as received and as two movements."""

    currency: str
    accounts: int
    balance: int
    received: int
    sent: int
    movements: int


@dataclass(frozen=True, slots=True)
class Counterparty(Result):
    """The account on the other side of a transfer and who holds it (not its balance)."""

    account_id: int
    currency: str
    owner_id: int
    owner_name: str


@dataclass(frozen=True, slots=True)
class Dashboard(Result):
    """A user's page: who, which accounts, what happened lately, and totals per currency."""

    user: UserRecord
    accounts: tuple[AccountRecord, ...]
    recent_transfers: tuple[TransferRecord, ...]
    counterparties: tuple[Counterparty, ...]
    summary: tuple[CurrencySummary, ...]
    notifications: tuple[NotificationRecord, ...]


@dataclass(frozen=True, slots=True)
class OutboxReport(Result):
    """What the outbox audit counted and found; `problems` keeps the first 50 findings."""

    transfers: int
    jobs: int
    jobs_by_status: dict[str, int]
    notifications: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when every transfer has one job and every done job took effect once."""
        return not self.problems

    @property
    def drained(self) -> bool:
        """True when every job is done (none queued, running or dead)."""
        return self.jobs_by_status.get(JobStatus.DONE, 0) == self.jobs


@dataclass(frozen=True, slots=True)
class Registration(Result):
    """A new user and their first API token, which is shown only this once."""

    user: UserRecord
    token: str


@dataclass(frozen=True, slots=True)
class Authenticated(Result):
    """Who a valid API token belongs to: the caller to hand the services, and the user."""

    caller: Caller
    user: UserRecord
    token_id: int


@dataclass(frozen=True, slots=True)
class JobRecord(Result):
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


@dataclass(frozen=True, slots=True)
class ClaimedJob(Result):
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


@dataclass(frozen=True, slots=True)
class JobStats(Result):
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
class WorkerStats(Result):
    """Counts of one worker's run so far."""

    worker_id: str
    claimed: int
    done: int
    retrying: int
    dead: int
    lost: int
    released: int
    in_flight: int

    def __str__(self) -> str:
        return (
            f"claimed {self.claimed}, done {self.done}, retrying {self.retrying}, "
            f"dead {self.dead}, lost {self.lost}, released {self.released}, "
            f"in flight {self.in_flight}"
        )


@dataclass(frozen=True, slots=True)
class RelayStats(Result):
    """Counts of one outbox relay's run so far."""

    relay_id: str
    published: int  # events the broker confirmed (a republished one counts again)
    failed: int  # events marked failed: they cannot be encoded
    batches: int
    reconnects: int  # broker connections lost and made again
    leader: bool  # holds the outbox lease: the one relay publishing now
    connected: bool

    def __str__(self) -> str:
        role = "publishing" if self.leader else "standing by"
        return (
            f"published {self.published}, failed {self.failed} in {self.batches} batches, "
            f"{self.reconnects} reconnects; {role}"
        )


@dataclass(frozen=True, slots=True)
class ConsumerStats(Result):
    """Counts of one event consumer's run so far."""

    consumer: str
    applied: int  # messages whose effect this run committed
    duplicates: int  # redelivered or republished messages the inbox already held
    dead_lettered: int  # refused (malformed, unknown type, or its effect failed)
    batches: int
    reconnects: int

    def __str__(self) -> str:
        return (
            f"applied {self.applied}, duplicates {self.duplicates}, dead-lettered "
            f"{self.dead_lettered} in {self.batches} batches, {self.reconnects} reconnects"
        )


@dataclass(frozen=True, slots=True)
class OutboxState(Result):
    """The outbox as an operator sees it: the backlog, the failures and who publishes."""

    pending: int
    failed: int
    relay: str | None  # the relay holding the lease, if it has not expired
    failed_events: tuple[FailedEventRecord, ...]


@dataclass(frozen=True, slots=True)
class FailedEventRecord(Result):
    """An outbox event the relay could not encode, and why."""

    id: int
    type: str
    error: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StatementLineRecord(Result):
    """One line of an account's statement (the example consumer's read model)."""

    account_id: int
    transfer_id: int
    event_id: str
    amount: int
    balance: int
    currency: str
    occurred_at: datetime
