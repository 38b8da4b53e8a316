"""The job queue against its peer: no-op jobs drained, bulk enqueue, pickup latency.

The peer is pgqueuer (PostgreSQL only), driven as its own benchmark tool drives it: its
schema installed by `Queries.install()`, jobs enqueued with one list call, a `PgQueuer`
on one asyncpg connection running in drain mode with a no-op entrypoint. Ours is
services.Worker with a no-op handler. Each row drains (or enqueues) the same number of
jobs; both queues are emptied before every run, and each variant sees only its own.
Measured in one process and event loop, like the other job workloads.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from typing import Any, ClassVar, Final

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from db import DatabaseSettings, create_engine, create_session_factory
from lab.bench.checks import PASSED, Check
from lab.bench.config import BenchConfig
from lab.bench.ops import Kind, Op, Tally
from lab.bench.targets import Backend
from lab.bench.variants.base import Variant
from lab.bench.workloads.base import Case, Workload, WorkloadEnv
from models import Job
from services import ClaimedJob, JobQueue, Worker, WorkerEvent

NOOP: Final = "bench.noop"
PGQ_ENTRYPOINT: Final = "bench_noop"
DRAIN_FACTOR: Final = 5  # no-op jobs per run: 5x --job-ops (4,000 in the full run)
ENQUEUE_FACTOR: Final = 25  # jobs per bulk enqueue run (20,000 in the full run)
LATENCY_JOBS: Final = 200  # single jobs enqueued one at a time, each waited for
WORKER_BATCHES: Final = 2  # batches in flight per worker: one settles while one claims
DRAIN_TIMEOUT: Final = 300.0


async def _noop(job: ClaimedJob, session: AsyncSession) -> None:
    return None


def _pgqueuer() -> Any:
    import pgqueuer  # the bench extra; only the PostgreSQL peer rows need it
    import pgqueuer.types

    return pgqueuer


class _Ours(Variant):
    """services.Worker instances, each on its own engine, `batch_size` jobs per claim."""

    kinds = frozenset({Kind.JOB})
    batch_size: ClassVar[int] = 10

    async def open(self) -> None:
        self._engines = [
            create_engine(
                DatabaseSettings(url=self.target.url, pool_size=self.pool, max_overflow=0)
            )
            for _ in range(4)
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
        stop = asyncio.Event()
        tally = Tally()
        started: dict[int, int] = {}

        def heard(event: WorkerEvent, job: ClaimedJob) -> None:
            now = time.perf_counter_ns()
            if event is WorkerEvent.STARTED:
                started[job.id] = now
            elif event is WorkerEvent.DONE:
                tally.record(1, now - started.pop(job.id, now))
                if tally.completed >= len(ops):
                    stop.set()

        workers = [
            Worker(
                JobQueue(create_session_factory(engine)),
                {NOOP: _noop},
                concurrency=_batches_in_flight(self.target.backend),
                batch_size=self.batch_size,
                poll_interval=0.05,
                listener=heard,
            )
            for engine in self._engines[:clients]
        ]
        if not ops:
            stop.set()
        runs = [asyncio.create_task(worker.run(stop)) for worker in workers]
        try:
            await asyncio.wait_for(stop.wait(), timeout=DRAIN_TIMEOUT)
        except TimeoutError:
            tally.fail(TimeoutError("drain did not finish"), int(DRAIN_TIMEOUT * 1e9))
            stop.set()
        await asyncio.gather(*runs)
        return tally


def _batches_in_flight(backend: str) -> int:
    # SQLite takes one writer at a time: a second batch in flight only waits in the busy
    # handler (which sleeps milliseconds at a time) for the first one's lock.
    return 1 if backend == "sqlite" else WORKER_BATCHES


class Ours10(_Ours):
    key = "worker-b10"
    label = "Worker, batch 10"
    batch_size = 10


class Ours100(_Ours):
    key = "worker-b100"
    label = "Worker, batch 100"
    batch_size = 100


class _Peer(Variant):
    """pgqueuer: one PgQueuer per client on its own asyncpg connection, drain mode."""

    kinds = frozenset({Kind.JOB})
    batch_size: ClassVar[int] = 10

    async def open(self) -> None:
        import asyncpg

        self._connections = [await asyncpg.connect(self.target.postgres_dsn) for _ in range(4)]

    async def close(self) -> None:
        for connection in self._connections:
            await connection.close()

    async def run(self, kind: Kind, ops: Sequence[Op], clients: int) -> Tally:
        pgqueuer = _pgqueuer()
        tally = Tally()
        queues = []
        for connection in self._connections[:clients]:
            pgq = pgqueuer.PgQueuer(pgqueuer.AsyncpgDriver(connection))

            async def noop(job: Any) -> None:
                tally.record(1, 0)

            pgq.entrypoint(PGQ_ENTRYPOINT)(noop)

            queues.append(pgq)
        mode = pgqueuer.types.QueueExecutionMode.drain
        await asyncio.wait_for(
            asyncio.gather(*(q.run(batch_size=self.batch_size, mode=mode) for q in queues)),
            timeout=DRAIN_TIMEOUT,
        )
        return tally


class Peer10(_Peer):
    key = "pgqueuer-b10"
    label = "pgqueuer, batch 10"
    batch_size = 10


class Peer100(_Peer):
    key = "pgqueuer-b100"
    label = "pgqueuer, batch 100"
    batch_size = 100


async def _install_peer(env: WorkloadEnv) -> None:
    import asyncpg

    pgqueuer = _pgqueuer()
    connection = await asyncpg.connect(env.target.postgres_dsn)
    try:
        queries = pgqueuer.Queries(pgqueuer.AsyncpgDriver(connection))
        if not await queries.schema_is_installed():
            await queries.install()
    finally:
        await connection.close()


async def _enqueue_peer(env: WorkloadEnv, count: int) -> None:
    import asyncpg

    pgqueuer = _pgqueuer()
    connection = await asyncpg.connect(env.target.postgres_dsn)
    try:
        queries = pgqueuer.Queries(pgqueuer.AsyncpgDriver(connection))
        await queries.enqueue([PGQ_ENTRYPOINT] * count, [b""] * count, [0] * count)
    finally:
        await connection.close()


async def _clear(env: WorkloadEnv, peer: bool) -> None:
    async with env.engine.begin() as connection:
        await connection.execute(delete(Job))
        if peer:
            await connection.execute(text("TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics"))


async def _our_open_jobs(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        count = await connection.scalar(
            select(func.count()).select_from(Job).where(Job.status != "done")
        )
    return int(count or 0)


class NoopDrain(Workload):
    """No-op jobs drained by one worker (batch 10 the reference, batch 100), the peer at
    the same batch sizes, and four of our workers."""

    kind = Kind.JOB
    unit = "jobs/s"

    def __init__(self, name: str, title: str, backend: Backend, requires: tuple[str, ...]):
        self.name = name
        self.title = title
        self.backend = backend
        self.requires = requires

    def cases(self, config: BenchConfig) -> list[Case]:
        pool = WORKER_BATCHES + 2  # the batches in flight, a claim, a heartbeat
        cases = [
            Case(Ours10, 1, pool, reference=True),
            Case(Ours100, 1, pool),
            Case(Ours100, 4, pool),
        ]
        if self.backend == "postgresql":
            cases += [Case(Peer10, 1, 1), Case(Peer100, 1, 1)]
        return cases

    def size(self, config: BenchConfig) -> int:
        return config.job_ops * DRAIN_FACTOR

    def plan(self, env: WorkloadEnv, count: int, rng: random.Random) -> list[Op]:
        return [Op(0) for _ in range(count)]

    async def setup(self, env: WorkloadEnv, config: BenchConfig) -> None:
        if self.backend == "postgresql":
            await _install_peer(env)

    async def before_run(self, env: WorkloadEnv) -> None:
        await _clear(env, self.backend == "postgresql")

    async def stage(self, env: WorkloadEnv, ops: Sequence[Op]) -> None:
        # Both queues get the jobs; each variant drains its own, the rest is cleared.
        await JobQueue(create_session_factory(env.engine)).enqueue_many([(NOOP, {})] * len(ops))
        if self.backend == "postgresql":
            await _enqueue_peer(env, len(ops))
            # Fresh statistics for both queues' tables, as autovacuum would have them on a
            # queue in steady state: with none, the claim's plan sorts the whole backlog.
            async with env.engine.connect() as connection:
                await connection.execute(text("ANALYZE jobs"))
                await connection.execute(text("ANALYZE pgqueuer"))
                await connection.commit()

    async def check(self, env: WorkloadEnv, runs: Sequence[tuple[Sequence[Op], Tally]]) -> Check:
        problems = [
            f"{tally.completed} of {len(ops)} jobs reported done"
            for ops, tally in runs
            if tally.completed != len(ops)
        ]
        # Our rows leave nothing open; a peer row leaves our jobs queued, and the reverse.
        if not problems:
            return PASSED
        return Check(ok=False, text=", ".join(problems), problems=tuple(problems))


class _OursEnqueue(Variant):
    key = "enqueue-many"
    label = "JobQueue.enqueue_many"
    kinds = frozenset({Kind.JOB})

    async def open(self) -> None:
        self._engine = create_engine(DatabaseSettings(url=self.target.url, pool_size=1))
        async with self._engine.connect():
            pass

    async def close(self) -> None:
        await self._engine.dispose()

    def engines(self) -> Sequence[AsyncEngine]:
        return [self._engine]

    async def run(self, kind: Kind, ops: Sequence[Op], clients: int) -> Tally:
        tally = Tally()
        began = time.perf_counter_ns()
        await JobQueue(create_session_factory(self._engine)).enqueue_many(
            [(NOOP, {"n": i}) for i in range(len(ops))]
        )
        elapsed = time.perf_counter_ns() - began
        for _ in ops:  # one call enqueued them all: each job's latency is the call's
            tally.record(1, elapsed)
        return tally


class _PeerEnqueue(Variant):
    key = "pgqueuer-enqueue"
    label = "pgqueuer Queries.enqueue (lists)"
    kinds = frozenset({Kind.JOB})

    async def open(self) -> None:
        import asyncpg

        self._connection = await asyncpg.connect(self.target.postgres_dsn)

    async def close(self) -> None:
        await self._connection.close()

    async def run(self, kind: Kind, ops: Sequence[Op], clients: int) -> Tally:
        pgqueuer = _pgqueuer()
        queries = pgqueuer.Queries(pgqueuer.AsyncpgDriver(self._connection))
        count = len(ops)
        tally = Tally()
        began = time.perf_counter_ns()
        await queries.enqueue(
            [PGQ_ENTRYPOINT] * count, [f"{i}".encode() for i in range(count)], [0] * count
        )
        elapsed = time.perf_counter_ns() - began
        for _ in ops:
            tally.record(1, elapsed)
        return tally


class BulkEnqueue(Workload):
    """N jobs enqueued in one call: ours (one multi-row INSERT) and the peer's list form."""

    kind = Kind.JOB
    unit = "jobs/s"
    name = "pg-jobs-enqueue"
    title = "Job queue on PostgreSQL: bulk enqueue, ours and pgqueuer's"
    backend: Backend = "postgresql"
    requires = ("asyncpg", "pgqueuer")

    def cases(self, config: BenchConfig) -> list[Case]:
        return [Case(_OursEnqueue, 1, 1, reference=True), Case(_PeerEnqueue, 1, 1)]

    def size(self, config: BenchConfig) -> int:
        return config.job_ops * ENQUEUE_FACTOR

    def plan(self, env: WorkloadEnv, count: int, rng: random.Random) -> list[Op]:
        return [Op(0) for _ in range(count)]

    async def setup(self, env: WorkloadEnv, config: BenchConfig) -> None:
        await _install_peer(env)

    async def before_run(self, env: WorkloadEnv) -> None:
        await _clear(env, True)

    async def check(self, env: WorkloadEnv, runs: Sequence[tuple[Sequence[Op], Tally]]) -> Check:
        expected = sum(len(ops) for ops, _ in runs)
        async with env.engine.connect() as connection:
            ours = int(await connection.scalar(select(func.count()).select_from(Job)) or 0)
            peer = int(await connection.scalar(text("SELECT count(*) FROM pgqueuer")) or 0)
        # One of the two variants ran since the reset: its rows are all there.
        if expected in (ours, peer) and 0 in (ours, peer):
            return PASSED
        message = f"expected {expected} jobs, found {ours} ours and {peer} pgqueuer's"
        return Check(ok=False, text=message, problems=(message,))


class _Pickup(Variant):
    """An idle worker (woken, not polling: max_poll_interval 60 s); each op enqueues one
    job and waits for its handler to start. Latency: enqueue commit -> handler start."""

    key = "pickup"
    label = "idle Worker, one job at a time"
    kinds = frozenset({Kind.JOB})

    async def open(self) -> None:
        self._engine = create_engine(DatabaseSettings(url=self.target.url, pool_size=3))
        async with self._engine.connect():
            pass

    async def close(self) -> None:
        await self._engine.dispose()

    async def run(self, kind: Kind, ops: Sequence[Op], clients: int) -> Tally:
        sessions = create_session_factory(self._engine)
        queue = JobQueue(sessions)
        tally = Tally()
        arrived: asyncio.Queue[int] = asyncio.Queue()

        async def handler(job: ClaimedJob, session: AsyncSession) -> None:
            arrived.put_nowait(time.perf_counter_ns())

        stop = asyncio.Event()
        worker = Worker(
            JobQueue(sessions),
            {NOOP: handler},
            concurrency=1,
            batch_size=1,
            poll_interval=60,
            max_poll_interval=60,
        )
        run = asyncio.create_task(worker.run(stop))
        try:
            await asyncio.wait_for(_until_live(worker), timeout=30)
            for _ in ops:
                async with sessions() as session, session.begin():
                    await queue.enqueue(NOOP, {}, session=session)
                committed = time.perf_counter_ns()
                started = await asyncio.wait_for(arrived.get(), timeout=30)
                tally.record(1, started - committed)
        finally:
            stop.set()
            await run
        return tally


async def _until_live(worker: Worker) -> None:
    while worker.wakeups is None:  # noqa: ASYNC110 (set by run(), which has no hook)
        await asyncio.sleep(0.01)
    if worker.wakeups.listener is not None:
        await worker.wakeups.listener.connected.wait()
    # Past the worker's first (empty) claim, so each job finds it idle and waiting.
    await asyncio.sleep(0.2)


class Pickup(Workload):
    """Pickup latency of an idle worker (p50/p99 are the figures; jobs/s is 1/latency)."""

    kind = Kind.JOB
    unit = "jobs/s"

    def __init__(self, name: str, title: str, backend: Backend, requires: tuple[str, ...]):
        self.name = name
        self.title = title
        self.backend = backend
        self.requires = requires

    def cases(self, config: BenchConfig) -> list[Case]:
        return [Case(_Pickup, 1, 3, reference=True)]

    def size(self, config: BenchConfig) -> int:
        return min(LATENCY_JOBS, config.job_ops)

    def plan(self, env: WorkloadEnv, count: int, rng: random.Random) -> list[Op]:
        return [Op(0) for _ in range(count)]

    async def before_run(self, env: WorkloadEnv) -> None:
        await _clear(env, False)

    async def check(self, env: WorkloadEnv, runs: Sequence[tuple[Sequence[Op], Tally]]) -> Check:
        left = await _our_open_jobs(env.engine)
        if left == 0:
            return PASSED
        message = f"{left} jobs not done"
        return Check(ok=False, text=message, problems=(message,))


SQLITE_NOOP: Final = NoopDrain("jobs-noop", "Job queue on SQLite: no-op jobs drained", "sqlite", ())
POSTGRES_NOOP: Final = NoopDrain(
    "pg-jobs-noop",
    "Job queue on PostgreSQL: no-op jobs drained, ours and pgqueuer's",
    "postgresql",
    ("asyncpg", "pgqueuer"),
)
POSTGRES_ENQUEUE: Final = BulkEnqueue()
SQLITE_PICKUP: Final = Pickup(
    "jobs-pickup", "Job queue on SQLite: pickup latency, in-process wake-up", "sqlite", ()
)
POSTGRES_PICKUP: Final = Pickup(
    "pg-jobs-pickup",
    "Job queue on PostgreSQL: pickup latency, LISTEN/NOTIFY",
    "postgresql",
    ("asyncpg",),
)
