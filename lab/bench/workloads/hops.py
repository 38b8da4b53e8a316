"""Calibration: what one thread hop costs here, against the cheapest SQLite statement."""

from __future__ import annotations

import random
from collections.abc import Sequence

from lab.bench.checks import Check, compare_reads
from lab.bench.config import BenchConfig
from lab.bench.ops import Kind, Op, Tally
from lab.bench.variants.aiosqlite_raw import AiosqliteRaw
from lab.bench.variants.sqlalchemy_async import SqlalchemyAsyncCore, SqlalchemyAsyncCoreStock
from lab.bench.variants.sqlite_blocking import SqliteBlocking
from lab.bench.variants.sqlite_to_thread import ToThreadPerCall
from lab.bench.workloads.base import Case, Workload, WorkloadEnv


class HopCost(Workload):
    """`SELECT 1`, one client: sqlite3 against the same call made through a thread.

    A hop's cost is (µs per op of the variant - µs per op of sqlite3) / hops per op.
    """

    name = "hops"
    title = "SELECT 1 on SQLite, 1 client: the cost of a thread hop"
    backend = "sqlite"
    kind = Kind.SELECT_ONE
    unit = "statements/s"

    def cases(self, config: BenchConfig) -> list[Case]:
        return [
            Case(SqliteBlocking, 1, 1, reference=True),
            Case(ToThreadPerCall, 1, 1),
            Case(AiosqliteRaw, 1, 1),
            Case(SqlalchemyAsyncCoreStock, 1, 1),
            Case(SqlalchemyAsyncCore, 1, 1),
        ]

    def size(self, config: BenchConfig) -> int:
        return config.hop_ops

    def plan(self, env: WorkloadEnv, count: int, rng: random.Random) -> list[Op]:
        return [Op(0)] * count

    async def check(self, env: WorkloadEnv, runs: Sequence[tuple[Sequence[Op], Tally]]) -> Check:
        return compare_reads(runs, lambda _op: 1)


WORKLOAD = HopCost()
