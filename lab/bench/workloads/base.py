"""What a workload is: an operation, the variants to compare, a database and its checks."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from lab.bench.checks import Check
from lab.bench.config import BenchConfig
from lab.bench.ledger_data import Ledger, Snapshot
from lab.bench.ops import Kind, Op, Tally
from lab.bench.targets import Backend, Target
from lab.bench.variants.base import Variant

Axis = Literal["clients", "pool"]


@dataclass(frozen=True, slots=True)
class Case:
    """One row of a workload's table: a variant with a number of clients and a pool size."""

    variant: type[Variant]
    clients: int
    pool: int
    reference: bool = False

    @property
    def key(self) -> str:
        """A stable id for the row."""
        return f"{self.variant.key}@c{self.clients}p{self.pool}"


@dataclass(slots=True)
class WorkloadEnv:
    """A workload's database: its target, a control engine (setup, checks), its ledger, and
    for read workloads the snapshot that every read is checked against."""

    target: Target
    engine: AsyncEngine
    ledger: Ledger
    snapshot: Snapshot | None = None


class Workload(ABC):
    """A workload. Subclasses say which cases to run and how to check a run.

    `axis` is what varies between its concurrent rows (for the chart); `requires` names
    modules its variants import (the PostgreSQL drivers are an optional extra).
    """

    name: str
    title: str
    backend: Backend
    kind: Kind
    axis: Axis = "clients"
    unit: str = "ops/s"
    requires: tuple[str, ...] = ()
    # Has rows through PgBouncer when the run has one (BenchConfig.pgbouncer_url).
    uses_pgbouncer: bool = False

    @abstractmethod
    def cases(self, config: BenchConfig) -> list[Case]:
        """The rows, the reference (ratio 1.0) among them."""

    @abstractmethod
    def size(self, config: BenchConfig) -> int:
        """Operations per timed run."""

    @abstractmethod
    def plan(self, env: WorkloadEnv, count: int, rng: random.Random) -> list[Op]:
        """`count` operations; the same list for every variant of one repetition."""

    async def setup(self, env: WorkloadEnv, config: BenchConfig) -> None:  # noqa: B027
        """Optional hook: once, on the fresh migrated database (after the accounts are seeded)."""

    async def before_run(self, env: WorkloadEnv) -> None:  # noqa: B027
        """Optional hook: before each run, put the data back where every variant starts from."""

    async def stage(self, env: WorkloadEnv, ops: Sequence[Op]) -> None:  # noqa: B027
        """Optional hook, untimed: before the variant runs `ops` (the warm-up's, then the
        timed run's), put in place what it consumes (the jobs workload enqueues its jobs)."""

    @abstractmethod
    async def check(self, env: WorkloadEnv, runs: Sequence[tuple[Sequence[Op], Tally]]) -> Check:
        """After each run (warm-up and timed): is the ledger right, did reads see the truth?"""

    def reference(self, config: BenchConfig) -> Case:
        """The case every ratio is taken against."""
        return next(case for case in self.cases(config) if case.reference)
