"""Running a workload: interleaved repetitions, rotated order, paired ratios, medians.

Within a repetition every case runs once, in an order rotated by one each repetition
(A B C, then B C A, then C A B), so drift in the machine (thermal, caches, other load)
spreads over all rows instead of landing on one. Each case's ratio is taken against the
reference run of the same repetition, and the median of those paired ratios reported.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

from db import EngineMonitor
from lab.bench.checks import Check
from lab.bench.config import BenchConfig
from lab.bench.hops import HopCounter
from lab.bench.latency import Latency
from lab.bench.ops import Op
from lab.bench.workloads.base import Case, Workload, WorkloadEnv

OnRun = Callable[[Workload, Case, int], None]


@dataclass(frozen=True, slots=True)
class RunResult:
    """One timed run of one case."""

    rep: int
    attempted: int
    completed: int
    seconds: float
    statements: int
    commits: int
    hops: int
    retries: int
    errors: dict[str, int]
    check: Check
    latency: Latency

    @property
    def ops_per_s(self) -> float:
        """Completed operations per second of wall time."""
        return self.completed / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Row:
    """A case's runs and what is reported about them."""

    case: Case
    runs: tuple[RunResult, ...]
    ratios: tuple[float, ...]

    @property
    def median(self) -> float:
        """Median throughput."""
        return statistics.median(r.ops_per_s for r in self.runs)

    @property
    def low(self) -> float:
        """Slowest repetition."""
        return min(r.ops_per_s for r in self.runs)

    @property
    def high(self) -> float:
        """Fastest repetition."""
        return max(r.ops_per_s for r in self.runs)

    @property
    def ratio(self) -> float:
        """Median of the paired ratios to the reference."""
        return statistics.median(self.ratios)

    @property
    def us_per_op(self) -> float:
        """Wall time per operation at the median throughput, in microseconds."""
        return 1e6 / self.median if self.median > 0 else float("inf")

    @property
    def p50_ms(self) -> float:
        """Median over repetitions of each repetition's median request latency."""
        return statistics.median(r.latency.p50_ms for r in self.runs)

    @property
    def p99_ms(self) -> float:
        """Median over repetitions of each repetition's 99th-percentile request latency."""
        return statistics.median(r.latency.p99_ms for r in self.runs)

    def per_op(self, counter: str) -> float:
        """Median over repetitions of a counter ('statements', 'commits', 'hops', 'retries')
        divided by the operations attempted."""
        return statistics.median(
            float(getattr(r, counter)) / max(r.attempted, 1) for r in self.runs
        )

    @property
    def errors(self) -> Counter[str]:
        """Errors of every repetition, by message."""
        total: Counter[str] = Counter()
        for run in self.runs:
            total.update(run.errors)
        return total

    @property
    def correct(self) -> bool:
        """Every repetition's checks passed."""
        return all(r.check.ok for r in self.runs)

    @property
    def verdict(self) -> str:
        """'yes', or the worst failed check and in how many repetitions it failed."""
        failed = [r.check for r in self.runs if not r.check.ok]
        if not failed:
            return "yes"
        worst = max(failed, key=lambda c: abs(c.lost_cents))
        if len(failed) == len(self.runs):
            return worst.text
        return f"{worst.text} ({len(failed)}/{len(self.runs)} runs)"


@dataclass(frozen=True, slots=True)
class WorkloadResult:
    """Everything measured for one workload."""

    workload: Workload
    size: int
    reps: int
    rows: tuple[Row, ...]
    seconds: float
    notes: tuple[str, ...] = field(default=())

    @property
    def reference(self) -> Row:
        """The reference row."""
        return next(row for row in self.rows if row.case.reference)


def rotated(cases: Sequence[Case], rep: int) -> list[Case]:
    """`cases` starting at position `rep` (mod its length)."""
    shift = rep % len(cases)
    return [*cases[shift:], *cases[:shift]]


async def run_workload(
    workload: Workload, env: WorkloadEnv, config: BenchConfig, on_run: OnRun
) -> WorkloadResult:
    """Every case of `workload`, `config.reps` times, interleaved; `on_run` before each run."""
    started = time.perf_counter()
    cases = workload.cases(config)
    size = workload.size(config)
    runs: dict[str, list[RunResult]] = {case.key: [] for case in cases}
    for rep in range(config.reps):
        rng = random.Random(f"{config.seed}-{workload.name}-{rep}")
        plan = workload.plan(env, size, rng)
        warmup = workload.plan(env, config.warmup(size), rng)
        for case in rotated(cases, rep):
            on_run(workload, case, rep)
            runs[case.key].append(await measure(workload, env, case, rep, plan, warmup))
    reference = next(case for case in cases if case.reference)
    baseline = [run.ops_per_s for run in runs[reference.key]]
    rows = tuple(
        Row(case=case, runs=tuple(runs[case.key]), ratios=paired_ratios(runs[case.key], baseline))
        for case in cases
    )
    return WorkloadResult(
        workload=workload,
        size=size,
        reps=config.reps,
        rows=rows,
        seconds=time.perf_counter() - started,
    )


def paired_ratios(runs: Sequence[RunResult], baseline: Sequence[float]) -> tuple[float, ...]:
    """Each run's throughput over the reference's in the same repetition."""
    return tuple(
        run.ops_per_s / reference if reference > 0 else float("nan")
        for run, reference in zip(runs, baseline, strict=True)
    )


async def measure(
    workload: Workload,
    env: WorkloadEnv,
    case: Case,
    rep: int,
    plan: Sequence[Op],
    warmup: Sequence[Op],
) -> RunResult:
    """Reset the data, connect, warm up (untimed), run `plan` timed, disconnect, check.

    Each list of ops is staged (untimed) just before it runs."""
    await workload.before_run(env)
    variant = case.variant(env.target, case.pool)
    await variant.open()
    try:
        await workload.stage(env, warmup)
        warm = await variant.run(workload.kind, warmup, case.clients)
        await workload.stage(env, plan)
        with ExitStack() as stack:
            monitors = [stack.enter_context(EngineMonitor(e)) for e in variant.engines()]
            counted = stack.enter_context(variant.statement_meter())
            hops = stack.enter_context(HopCounter())
            started = time.perf_counter()
            tally = await variant.run(workload.kind, plan, case.clients)
            seconds = time.perf_counter() - started
            if tally.elapsed_s is not None:
                seconds = tally.elapsed_s
    finally:
        await variant.close()
    check = await workload.check(env, [(warmup, warm), (plan, tally)])
    statements = tally.meter.statements + counted.statements + sum(m.statements for m in monitors)
    commits = tally.meter.commits + counted.commits + sum(m.commits for m in monitors)
    # A self-timed variant runs its own count of operations (pgbench: a multiple of clients).
    attempted = len(plan) if tally.elapsed_s is None else tally.completed + tally.error_count
    return RunResult(
        rep=rep,
        attempted=attempted,
        completed=tally.completed,
        seconds=seconds,
        statements=statements,
        commits=commits,
        hops=hops.count,
        retries=tally.meter.retries,
        errors=dict(tally.errors),
        check=check,
        latency=Latency.of(tally.latencies_ns),
    )
