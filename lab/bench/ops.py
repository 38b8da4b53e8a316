"""What one benchmark run does (operations) and what it counts (meters and tallies)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    """The operation a workload repeats."""

    SELECT_ONE = "select-one"
    TRANSFER = "transfer"
    POINT_READ = "point-read"
    DASHBOARD = "dashboard"
    SLOW_LOOKUP = "slow-lookup"
    JOB = "job"


@dataclass(frozen=True, slots=True)
class Op:
    """One request. Reads use `account` only; a transfer moves `amount` to `other`."""

    account: int
    other: int = 0
    amount: int = 0


@dataclass(slots=True)
class Meter:
    """What one client sent: statements (BEGIN included when sent as SQL), commits, retries.

    Each client (task or thread) has its own meter, so no counter is shared between threads.
    """

    statements: int = 0
    commits: int = 0
    retries: int = 0

    def add(self, other: Meter) -> None:
        """Add `other`'s counts to this meter."""
        self.statements += other.statements
        self.commits += other.commits
        self.retries += other.retries


@dataclass(slots=True)
class Tally:
    """The outcome of running a list of operations.

    `value` sums what the operations returned: 1 per committed transfer (0 when refused),
    or the checksum of what a read saw, so a read that returned wrong data is caught.
    `latencies_ns` holds every operation's wall time (those that raised included), from the
    client starting it to its completion, in the order the client ran them.
    """

    completed: int = 0
    value: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    meter: Meter = field(default_factory=Meter)
    latencies_ns: list[int] = field(default_factory=list)
    # Set by a variant that times itself (an external client whose process start and
    # connections are not part of the work): then the harness's wall clock is not used.
    elapsed_s: float | None = None

    def record(self, value: int, elapsed_ns: int) -> None:
        """One operation finished after `elapsed_ns` and returned `value`."""
        self.completed += 1
        self.value += value
        self.latencies_ns.append(elapsed_ns)

    def fail(self, exc: BaseException, elapsed_ns: int) -> None:
        """One operation raised `exc` after `elapsed_ns`; count it under its first line."""
        self.latencies_ns.append(elapsed_ns)
        lines = str(exc).strip().splitlines()
        self.errors[f"{type(exc).__name__}: {lines[0] if lines else ''}".strip()[:160]] += 1

    def add(self, other: Tally) -> None:
        """Merge another client's tally into this one."""
        self.completed += other.completed
        self.value += other.value
        self.errors.update(other.errors)
        self.meter.add(other.meter)
        self.latencies_ns.extend(other.latencies_ns)

    @property
    def error_count(self) -> int:
        """How many operations raised."""
        return sum(self.errors.values())
