"""The job queue: N queued `transfer.completed` jobs drained by 1 and by 4 workers.

Each run starts from an empty queue; the jobs of the warm-up and of the timed run are
enqueued (untimed) by real deposits, whose transaction writes each job through the
outbox, exactly as the ledger does. The workers are services.Worker instances in this
process, each with its own engine as separate worker processes would have; they share
this process's event loop, so CPU-bound work does not spread over cores as it would with
processes (`python -m lab.measure` drains with processes).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from db import DatabaseSettings, create_engine, create_session_factory
from lab.bench.checks import PASSED, Check
from lab.bench.config import BenchConfig
from lab.bench.ledger_data import MAX_AMOUNT, reset
from lab.bench.ops import Kind, Op, Tally
from lab.bench.targets import Backend
from lab.bench.variants.base import Variant
from lab.bench.workloads.base import Case, Workload, WorkloadEnv
from models import Job, Notification
from services import (
    ClaimedJob,
    JobQueue,
    TransferRequest,
    TransferService,
    Worker,
    WorkerEvent,
    ledger_handlers,
)

WORKER_COUNTS: Final = (1, 4)
CONCURRENCY: Final = 2  # batches in flight per worker: one settles while one claims
BATCH_SIZE: Final = 50
POLL_INTERVAL: Final = 0.05  # short, so the drain's tail is not mostly idle polling
ENQUEUE_BATCH: Final = 500  # deposits per transaction while staging
# A drain that has not finished by then is stopped and reported, not waited for forever.
DRAIN_TIMEOUT_BASE: Final = 60.0
DRAIN_TIMEOUT_PER_JOB: Final = 0.1


class JobWorkers(Variant):
    """`clients` Worker instances, each on its own engine with a pool of `pool`, running
    the ledger's handlers until every job of the run has finished (done or dead).

    A job's latency is from its worker starting it to its completion committing.
    """

    key = "workers"
    label = "Worker (services.Worker)"
    hop_via = "aiosqlite"
    kinds = frozenset({Kind.JOB})

    async def open(self) -> None:
        # One engine per worker that any case may run, connected here (untimed).
        self._engines = [
            create_engine(
                DatabaseSettings(url=self.target.url, pool_size=self.pool, max_overflow=0)
            )
            for _ in range(max(WORKER_COUNTS))
        ]
        for engine in self._engines:
            connections = [await engine.connect() for _ in range(self.pool)]
            for connection in connections:
                await connection.close()

    async def close(self) -> None:
        for engine in self._engines:
            await engine.dispose()

    def engines(self) -> Sequence[AsyncEngine]:
        return self._engines

    async def run(self, kind: Kind, ops: Sequence[Op], clients: int) -> Tally:
        if kind is not Kind.JOB:
            raise self.unsupported(kind)
        if clients > len(self._engines):
            raise ValueError(f"{self.key} runs at most {len(self._engines)} workers")
        stop = asyncio.Event()
        finished = 0
        tallies = [Tally() for _ in range(clients)]
        started: dict[int, int] = {}

        def listener(tally: Tally) -> Callable[[WorkerEvent, ClaimedJob], None]:
            def heard(event: WorkerEvent, job: ClaimedJob) -> None:
                nonlocal finished
                now = time.perf_counter_ns()
                if event is WorkerEvent.STARTED:
                    started[job.id] = now
                    return
                if event is WorkerEvent.DONE:
                    tally.record(1, now - started.pop(job.id, now))
                elif event is WorkerEvent.DEAD:
                    tally.fail(
                        RuntimeError(f"job {job.id} is dead"), now - started.pop(job.id, now)
                    )
                else:
                    return
                finished += 1
                if finished >= len(ops):
                    stop.set()

            return heard

        workers = [
            Worker(
                JobQueue(create_session_factory(engine)),
                ledger_handlers(),
                concurrency=CONCURRENCY,
                batch_size=BATCH_SIZE,
                poll_interval=POLL_INTERVAL,
                listener=listener(tally),
            )
            for engine, tally in zip(self._engines, tallies, strict=False)
        ]
        if not ops:
            stop.set()
        runs = [asyncio.create_task(worker.run(stop)) for worker in workers]
        limit = DRAIN_TIMEOUT_BASE + DRAIN_TIMEOUT_PER_JOB * len(ops)
        try:
            await asyncio.wait_for(stop.wait(), timeout=limit)
        except TimeoutError:
            tallies[0].fail(
                TimeoutError(
                    f"drain stopped after {limit:.0f} s, {len(ops) - finished} unfinished"
                ),
                int(limit * 1e9),
            )
            stop.set()
        for tally, stats in zip(tallies, await asyncio.gather(*runs), strict=True):
            tally.meter.retries += stats.retrying
        total = Tally()
        for tally in tallies:
            total.add(tally)
        return total


class JobDrain(Workload):
    """Reference: one worker. Then four workers on the same queue, each its own engine."""

    kind = Kind.JOB
    unit = "jobs/s"

    def __init__(self, name: str, title: str, backend: Backend, requires: tuple[str, ...]) -> None:
        self.name = name
        self.title = title
        self.backend = backend
        self.requires = requires

    def cases(self, config: BenchConfig) -> list[Case]:
        pool = CONCURRENCY + 2  # every batch's transaction, a claim and a heartbeat
        return [Case(JobWorkers, n, pool, reference=n == 1) for n in WORKER_COUNTS]

    def size(self, config: BenchConfig) -> int:
        return config.job_ops

    def plan(self, env: WorkloadEnv, count: int, rng: random.Random) -> list[Op]:
        """One deposit per job: the deposit enqueues it, its notification is its effect."""
        ids = env.ledger.account_ids
        return [Op(rng.choice(ids), amount=rng.randint(1, MAX_AMOUNT)) for _ in range(count)]

    async def before_run(self, env: WorkloadEnv) -> None:
        async with env.engine.begin() as connection:
            await connection.execute(delete(Notification))
            await connection.execute(delete(Job))
        await reset(env.engine, env.ledger)

    async def stage(self, env: WorkloadEnv, ops: Sequence[Op]) -> None:
        transfers = TransferService(create_session_factory(env.engine))
        for start in range(0, len(ops), ENQUEUE_BATCH):
            batch = ops[start : start + ENQUEUE_BATCH]
            outcomes = await transfers.transfer_many(
                [TransferRequest.of(None, op.account, op.amount) for op in batch]
            )
            failed = [o for o in outcomes if isinstance(o, Exception)]
            if failed:
                raise RuntimeError(f"{self.name}: staging a deposit failed: {failed[0]!r}")

    async def check(self, env: WorkloadEnv, runs: Sequence[tuple[Sequence[Op], Tally]]) -> Check:
        return await check_jobs(env.engine, sum(len(ops) for ops, _ in runs), runs)


async def check_jobs(
    engine: AsyncEngine, expected: int, runs: Sequence[tuple[Sequence[Op], Tally]] = ()
) -> Check:
    """Every job enqueued since the reset done exactly once: `expected` jobs, all done (none
    queued, running or dead), one notification per job's transfer and no other, and each
    run's workers reporting exactly as many completions as it had jobs."""
    stats = await JobQueue(create_session_factory(engine)).stats()
    async with engine.connect() as connection:
        payloads = (await connection.scalars(select(Job.payload))).all()
        notified = Counter((await connection.scalars(select(Notification.transfer_id))).all())
    problems = []
    if stats.done != expected:
        problems.append(f"{stats.done} of {expected} jobs done")
    unfinished = {"queued": stats.queued, "running": stats.running, "dead": stats.dead}
    problems += [f"{count} {status}" for status, count in unfinished.items() if count]
    wanted = Counter(int(payload["transfer_id"]) for payload in payloads)
    missing = sum((wanted - notified).values())
    extra = sum((notified - wanted).values())
    if missing:
        problems.append(f"{missing} jobs without their notification")
    if extra:
        problems.append(f"{extra} notifications more than jobs")
    for ops, tally in runs:
        if tally.completed != len(ops):
            problems.append(f"workers reported {tally.completed} of {len(ops)} jobs done")
    if not problems:
        return PASSED
    return Check(ok=False, text=", ".join(problems), problems=tuple(problems))


SQLITE: Final = JobDrain(
    "jobs", "Job queue on SQLite: jobs drained by 1 and 4 workers", "sqlite", ()
)
POSTGRES: Final = JobDrain(
    "pg-jobs",
    "Job queue on PostgreSQL: jobs drained by 1 and 4 workers",
    "postgresql",
    ("asyncpg",),
)
