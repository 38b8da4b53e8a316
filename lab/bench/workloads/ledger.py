"""Shared behaviour of the workloads over the ledger: transfers, and reads of it."""

from __future__ import annotations

import random
from collections.abc import Sequence

from lab.bench.checks import Check, audit_transfers, compare_reads
from lab.bench.config import BenchConfig
from lab.bench.ledger_data import read_plan, reset, snapshot, transfer_plan
from lab.bench.ops import Kind, Op, Tally
from lab.bench.workloads.base import Workload, WorkloadEnv


class TransferWorkload(Workload):
    """Transfers between random accounts; every run starts from freshly funded accounts."""

    kind = Kind.TRANSFER
    unit = "transfers/s"

    def plan(self, env: WorkloadEnv, count: int, rng: random.Random) -> list[Op]:
        return transfer_plan(env.ledger, count, rng)

    async def before_run(self, env: WorkloadEnv) -> None:
        await reset(env.engine, env.ledger)

    async def check(self, env: WorkloadEnv, runs: Sequence[tuple[Sequence[Op], Tally]]) -> Check:
        committed = sum(tally.value for _, tally in runs)
        return await audit_transfers(env.engine, committed)


class ReadWorkload(Workload):
    """Reads of a ledger that already has a history; checked against a snapshot of it."""

    unit = "reads/s"
    history_per_account = 20

    def plan(self, env: WorkloadEnv, count: int, rng: random.Random) -> list[Op]:
        return read_plan(env.ledger, count, rng)

    async def setup(self, env: WorkloadEnv, config: BenchConfig) -> None:
        rng = random.Random(f"{config.seed}-{self.name}-history")
        history = transfer_plan(env.ledger, self.history_per_account * config.accounts, rng)
        await reset(env.engine, env.ledger, history)
        env.snapshot = await snapshot(env.engine)

    async def check(self, env: WorkloadEnv, runs: Sequence[tuple[Sequence[Op], Tally]]) -> Check:
        if env.snapshot is None:
            raise RuntimeError(f"{self.name}: check before setup")
        expected = (
            env.snapshot.dashboard if self.kind is Kind.DASHBOARD else env.snapshot.point_read
        )
        return compare_reads(runs, expected)
