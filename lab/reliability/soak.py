"""The soak: a mixed load through the services for a given time, then a verdict.

Clients pick operations by weight (DEFAULT_MIX): transfers, deposits and withdrawals with
idempotency keys, replays of acknowledged requests, reads (balance, history, audit), and
requests interrupted by a short deadline or a cancellation. An interrupted request is
settled the way a client must settle it: retried with its key until it has a definite
outcome. So the soak always knows how much money its accounts must hold.

The verdict fails on lost or created money (balances against acknowledged requests, and
the auditor), on a replay that returns another transfer, on connections still checked
out after the load, on errors nobody expects, and, for runs long enough to tell, on
resident memory that keeps growing. Its own bookkeeping is bounded (a fixed-size latency
histogram, acknowledged requests verified and dropped in batches), so it does not grow
itself.

Every money request enqueues a `transfer.completed` job through the outbox; a Worker
drains them beside the clients, and clients read the queue's figures and deliver random
jobs a second time (a handler must absorb that). After the load the queue is drained and
the verdict also fails unless every committed transfer has exactly one job and every job
is done with exactly one notification (none for a withdrawal).

New kinds of work plug in through OPERATIONS and the mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import random
import secrets
import time
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncEngine

from db import PoolStatus, create_session_factory, pool_status
from lab.reliability.latency import LatencyHistogram
from lab.reliability.memory import MemoryTrend, judge_memory, rss_bytes
from services import (
    TRANSFER_COMPLETED,
    AccountService,
    ClaimedJob,
    JobQueue,
    LedgerAuditor,
    OutboxAuditor,
    OutboxReport,
    TransferNotifier,
    TransferRecord,
    TransferRequest,
    TransferService,
    UserService,
    Worker,
    WorkerEvent,
    WorkerStats,
    drain,
    ledger_handlers,
)
from services.errors import DatabaseBusy, LedgerError
from services.transactions import run_in_transaction

DEFAULT_MIX: Final[Mapping[str, int]] = {
    "transfer": 40,
    "deposit": 5,
    "withdraw": 5,
    "replay": 5,
    "balance": 20,
    "history": 14,
    "audit": 1,
    "deadline": 5,
    "cancel": 5,
    "job_stats": 3,
    "redeliver": 2,
}
# Interruptions land within this many seconds of the request's start: mostly inside it.
_INTERRUPT_WITHIN_S: Final = 0.005
_SETTLE_ATTEMPTS: Final = 10
# A bound, not a pause: how long a scheduled run waits for the worker's first finished job.
_FIRST_JOB_WITHIN_S: Final = 30.0


@dataclass(frozen=True)
class SoakConfig:
    """How long, how hard and what to run."""

    seconds: float = 30.0
    concurrency: int = 16
    accounts: int = 20
    opening_balance: int = 1_000_000
    seed: int | None = None
    verify_every: int = 200
    sample_every: float = 0.25
    # Shorter runs, and runs by operation count, report memory but do not judge it: a
    # trend needs time to show.
    judge_memory_after: float = 10.0
    worker_concurrency: int = 4
    mix: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MIX))
    # Set, the run is this many operations instead of `seconds`: a shuffled schedule in
    # which every kind of the mix comes up at least `each_at_least` times, so a short run
    # covers the whole mix however slow the machine is (by time, a kind of weight 1 in 105
    # may not come up at all in a few seconds under load).
    operations: int | None = None
    each_at_least: int = 1


def schedule(config: SoakConfig, rng: random.Random) -> list[str]:
    """`config.operations` kinds of operation: each of the mix `each_at_least` times, the
    rest drawn by weight, in a shuffled order."""
    assert config.operations is not None
    kinds, weights = list(config.mix), list(config.mix.values())
    guaranteed = [kind for kind in kinds for _ in range(config.each_at_least)]
    if config.operations < len(guaranteed):
        raise ValueError(
            f"{config.operations} operations cannot hold each of {len(kinds)} kinds "
            f"{config.each_at_least} times"
        )
    drawn = rng.choices(kinds, weights, k=config.operations - len(guaranteed))
    order = guaranteed + drawn
    rng.shuffle(order)
    return order


@dataclass(frozen=True)
class Sent:
    """A money request of the soak: a deposit has no source, a withdrawal no destination."""

    source: int | None
    destination: int | None
    amount: int
    key: str

    @property
    def money_in(self) -> int:
        """How much money this request brings into the ledger (negative: takes out)."""
        if self.source is None:
            return self.amount
        if self.destination is None:
            return -self.amount
        return 0


@dataclass(frozen=True)
class SoakReport:
    """What the soak did and what it found."""

    target: str
    seconds: float
    concurrency: int
    operations: Mapping[str, int]
    errors: Mapping[str, int]
    latency: Mapping[str, tuple[int, float, float]]  # kind: (count, p50 s, p99 s)
    memory: MemoryTrend
    pool_after: PoolStatus
    expected_money: int
    held_money: int
    worker_during_load: WorkerStats
    drained_after_load: int
    outbox: OutboxReport
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when nothing was lost, leaked or kept growing."""
        return not self.problems

    def format(self) -> str:
        """The report as lines of text."""
        total = sum(self.operations.values())
        ops = ", ".join(f"{kind} {n}" for kind, n in sorted(self.operations.items()))
        errors = ", ".join(f"{kind} {n}" for kind, n in sorted(self.errors.items())) or "none"
        latency = "; ".join(
            f"{kind} {p50 * 1000:.1f}/{p99 * 1000:.1f}"
            for kind, (_, p50, p99) in sorted(self.latency.items())
        )
        verdict = "ok" if self.ok else f"FAILED ({len(self.problems)} problems)"
        return "\n".join(
            [
                f"soak on {self.target}: {self.seconds:.1f} s, {self.concurrency} clients",
                f"  operations: {total} ({total / max(self.seconds, 1e-9):.0f}/s): {ops}",
                f"  errors by kind: {errors}",
                f"  latency p50/p99 ms: {latency}",
                f"  memory: {self.memory.describe()}",
                f"  pool after the load: {self.pool_after}",
                f"  money: accounts hold {self.held_money}, requests say {self.expected_money}",
                f"  jobs: worker during the load: {self.worker_during_load}; "
                f"drained after it: {self.drained_after_load}",
                f"  outbox: {self.outbox.transfers} transfers, {self.outbox.jobs} jobs "
                f"{dict(sorted(self.outbox.jobs_by_status.items()))}, "
                f"{self.outbox.notifications} notifications",
                f"  verdict: {verdict}",
                *(f"    - {problem}" for problem in self.problems),
            ]
        )


Operation = Callable[["Soak", random.Random], Awaitable[None]]


@contextmanager
def _loop_errors_counted(loop: asyncio.AbstractEventLoop, counts: Counter[str]) -> Iterator[None]:
    # A driver's internal futures can end with an exception nobody retrieves once a
    # cancelled query's connection is torn down (asyncpg: "unexpected connection_lost()
    # call"); asyncio reports each when it is collected. Count them as errors of their
    # kind; collecting before leaving makes those of this run show up in this run.
    previous = loop.get_exception_handler()

    def count(_: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        kind = f" ({type(error).__name__})" if error is not None else ""
        counts[f"asyncio: {context.get('message', 'error')}{kind}"] += 1

    loop.set_exception_handler(count)
    try:
        yield
    finally:
        gc.collect()
        loop.set_exception_handler(previous)


class _CountingHandler(logging.Handler):
    def __init__(self, counts: Counter[str]) -> None:
        super().__init__(logging.WARNING)
        self.counts = counts

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[f"logged by the pool: {record.getMessage()}"] += 1


@contextmanager
def _pool_log_counted(counts: Counter[str]) -> Iterator[None]:
    # SQLAlchemy logs (with a traceback) each pool reset that a cancellation interrupts.
    # Under a load that cancels on purpose those are expected: count them as errors of
    # their kind instead of printing hundreds of tracebacks.
    logger = logging.getLogger("sqlalchemy.pool")
    handler, propagate = _CountingHandler(counts), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


class Soak:
    """One soak run over one engine. Build it, then `await run()`."""

    def __init__(self, engine: AsyncEngine, config: SoakConfig, target: str) -> None:
        unknown = set(config.mix) - set(OPERATIONS)
        if unknown:
            raise ValueError(f"unknown operations in the mix: {sorted(unknown)}")
        self.engine = engine
        self.config = config
        self.target = target
        sessions = create_session_factory(engine)
        self.users = UserService(sessions)
        self.accounts = AccountService(sessions)
        self.transfers = TransferService(sessions)
        self.auditor = LedgerAuditor(sessions)
        self.sessions = sessions
        self.queue = JobQueue(sessions)
        self.worker = Worker(
            self.queue,
            ledger_handlers(),
            concurrency=config.worker_concurrency,
            poll_interval=0.05,
            lease_seconds=10.0,
            shutdown_timeout=5.0,
            listener=self._on_job_event,
        )
        self.a_job_done = asyncio.Event()
        self.interruptions: Counter[str] = Counter()
        self.tag = secrets.token_hex(4)
        self.numbers = itertools.count(1)
        self.account_ids: list[int] = []
        self.expected_money = 0
        self.operations: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.latency: defaultdict[str, LatencyHistogram] = defaultdict(LatencyHistogram)
        self.unverified: list[tuple[Sent, int]] = []
        self.recent: deque[tuple[Sent, int]] = deque(maxlen=100)
        self.problems: list[str] = []
        self.rss: list[int] = []

    def _on_job_event(self, event: WorkerEvent, _: ClaimedJob) -> None:
        if event is WorkerEvent.DONE:
            self.a_job_done.set()

    def problem(self, text: str) -> None:
        """Record a finding (the first 50 are kept)."""
        if len(self.problems) < 50:
            self.problems.append(text)

    def new_request(self, rng: random.Random, kind: str) -> Sent:
        """A fresh keyed request between the soak's accounts."""
        key = f"soak-{self.tag}-{next(self.numbers)}"
        amount = rng.randint(1, 1_000)
        if kind == "deposit":
            return Sent(None, rng.choice(self.account_ids), amount, key)
        if kind == "withdraw":
            return Sent(rng.choice(self.account_ids), None, amount, key)
        source, destination = rng.sample(self.account_ids, 2)
        return Sent(source, destination, amount, key)

    async def send(self, sent: Sent) -> TransferRecord:
        """Send `sent` once; account for it as soon as it is acknowledged."""
        if sent.source is None:
            assert sent.destination is not None
            outcome = await self.accounts.deposit(
                sent.destination, sent.amount, idempotency_key=sent.key
            )
        elif sent.destination is None:
            outcome = await self.accounts.withdraw(
                sent.source, sent.amount, idempotency_key=sent.key
            )
        else:
            outcome = await self.transfers.transfer(
                sent.source, sent.destination, sent.amount, idempotency_key=sent.key
            )
        # No await from here on: an acknowledged request is always accounted for.
        self.expected_money += sent.money_in
        self.unverified.append((sent, outcome.id))
        self.recent.append((sent, outcome.id))
        return outcome

    async def settle(self, sent: Sent) -> None:
        """After an interruption: retry with the key until the request has an outcome."""
        for _ in range(_SETTLE_ATTEMPTS):
            try:
                await self.send(sent)
            except DatabaseBusy:
                self.errors["DatabaseBusy while settling"] += 1
                continue
            return
        self.problem(f"request {sent.key} could not be settled in {_SETTLE_ATTEMPTS} attempts")

    async def interrupted(self, sent: Sent, how: str, rng: random.Random) -> None:
        """Send `sent` in a task of its own that is interrupted `how`; then settle it."""
        self.interruptions[how] += 1
        # The first of each kind lands at the request's first suspension, so each way of
        # interrupting happens in any run that tries it (a random delay may come after a
        # fast request has finished); the rest land anywhere within the first few ms.
        first = self.interruptions[how] == 1
        delay = 0.0 if first else rng.uniform(0, _INTERRUPT_WITHIN_S)

        async def attempt() -> None:
            if how == "deadline":
                async with asyncio.timeout(delay):
                    await self.send(sent)
            else:
                await self.send(sent)

        # Its own task: a cancellation aimed at the request can never reach the client.
        task = asyncio.create_task(attempt())
        timer = (
            asyncio.get_running_loop().call_later(delay, task.cancel) if how == "cancel" else None
        )
        try:
            await task
        except TimeoutError:
            self.errors["deadline expired"] += 1
            await self.settle(sent)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the soak itself is being stopped
            self.errors["cancelled"] += 1
            await self.settle(sent)
        finally:
            if timer is not None:
                timer.cancel()

    async def verify(self) -> None:
        """Replay acknowledged requests in one batch: each must return its own transfer."""
        batch, self.unverified = self.unverified, []
        if not batch:
            return
        requests = [
            TransferRequest.of(s.source, s.destination, s.amount, idempotency_key=s.key)
            for s, _ in batch
        ]
        outcomes = await self.transfers.transfer_many(requests)
        for (sent, transfer_id), outcome in zip(batch, outcomes, strict=True):
            if not isinstance(outcome, TransferRecord) or outcome.id != transfer_id:
                self.problem(f"request {sent.key} was acknowledged as {transfer_id}, now {outcome}")

    async def set_up(self) -> None:
        for n in range(self.config.accounts):
            user = await self.users.register(f"soak-{self.tag}-{n}@example.com", f"Soak {n}")
            account = await self.accounts.open(user.id, "EUR")
            self.account_ids.append(account.id)
            await self.send(
                Sent(None, account.id, self.config.opening_balance, f"soak-{self.tag}-open-{n}")
            )

    async def client(
        self, rng: random.Random, next_kind: Callable[[random.Random], str | None]
    ) -> None:
        while (kind := next_kind(rng)) is not None:
            started = time.perf_counter()
            try:
                await OPERATIONS[kind](self, rng)
            except LedgerError as error:
                self.errors[type(error).__name__] += 1
            except Exception as error:  # the soak reports what nobody expects, then goes on
                self.errors[f"unexpected {type(error).__name__}"] += 1
                self.problem(f"{kind}: unexpected {type(error).__name__}: {error}")
            elapsed = time.perf_counter() - started
            self.latency[kind].record(elapsed)
            self.latency["all"].record(elapsed)
            self.operations[kind] += 1
            if len(self.unverified) >= self.config.verify_every:
                await self.verify()

    async def sample_memory(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.rss.append(rss_bytes())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.sample_every):
                    await stop.wait()
        self.rss.append(rss_bytes())

    def _kinds(self, started: float, seed: int) -> Callable[[random.Random], str | None]:
        """What each client does next: by schedule, or drawn by weight until time is up."""
        if self.config.operations is not None:
            planned = iter(schedule(self.config, random.Random(seed)))
            return lambda _: next(planned, None)
        loop = asyncio.get_running_loop()
        stop_at = started + self.config.seconds
        kinds, weights = list(self.config.mix), list(self.config.mix.values())
        return lambda rng: rng.choices(kinds, weights)[0] if loop.time() < stop_at else None

    async def run(self) -> SoakReport:
        """Set up accounts, run the load (`config.operations`, or for `config.seconds`),
        then judge."""
        await self.set_up()
        loop = asyncio.get_running_loop()
        seed = self.config.seed if self.config.seed is not None else random.randrange(2**32)
        started = loop.time()
        next_kind = self._kinds(started, seed)
        clients = [random.Random(seed + n) for n in range(self.config.concurrency)]
        stop_worker, stop_sampling = asyncio.Event(), asyncio.Event()
        worker = asyncio.create_task(self.worker.run(stop_worker), name="soak-worker")
        sampler = asyncio.create_task(self.sample_memory(stop_sampling), name="soak-memory")
        with _pool_log_counted(self.errors), _loop_errors_counted(loop, self.errors):
            try:
                await asyncio.gather(*(self.client(rng, next_kind) for rng in clients))
                if self.config.operations is not None:
                    # A short run may finish before the worker's first job does (it has the
                    # set-up's deposits to notify): wait for one, so the run always shows
                    # the worker working beside the load.
                    async with asyncio.timeout(_FIRST_JOB_WITHIN_S):
                        await self.a_job_done.wait()
            finally:
                stop_sampling.set()
                stop_worker.set()
                await sampler
                during = await worker
            elapsed = loop.time() - started
            await self.verify()
            after = await drain(self.worker)
            return await self.judge(elapsed, during, after.done - during.done)

    async def judge(self, elapsed: float, during: WorkerStats, drained: int) -> SoakReport:
        pool = pool_status(self.engine)
        if pool.checked_out:
            self.problem(f"{pool.checked_out} connections still checked out after the load")
        held = sum([(await self.accounts.get(i)).balance for i in self.account_ids])
        if held != self.expected_money:
            self.problem(
                f"money lost or made: the soak's accounts hold {held}, "
                f"its acknowledged requests say {self.expected_money}"
            )
        audit = await self.auditor.verify()
        for finding in audit.problems:
            self.problem(f"audit: {finding}")
        outbox = await OutboxAuditor(self.sessions).verify()
        for finding in outbox.problems:
            self.problem(f"outbox: {finding}")
        if not outbox.drained:
            self.problem(f"jobs not done after draining: {outbox.jobs_by_status}")
        # A run by operation count is the short form: however long a slow machine takes
        # over it, it is not meant to show a trend.
        if self.config.operations is None and elapsed >= self.config.judge_memory_after:
            memory = judge_memory(self.rss)
        else:
            memory = judge_memory(self.rss, min_samples=len(self.rss) + 1)
        if memory.growing:
            self.problem(f"memory keeps growing: {memory.describe()}")
        return SoakReport(
            target=self.target,
            seconds=elapsed,
            concurrency=self.config.concurrency,
            operations=dict(self.operations),
            errors=dict(self.errors),
            latency={
                kind: (h.count, h.quantile(0.5), h.quantile(0.99))
                for kind, h in self.latency.items()
            },
            memory=memory,
            pool_after=pool,
            expected_money=self.expected_money,
            held_money=held,
            worker_during_load=during,
            drained_after_load=drained,
            outbox=outbox,
            problems=tuple(self.problems),
        )


async def _money(kind: str, soak: Soak, rng: random.Random) -> None:
    await soak.send(soak.new_request(rng, kind))


async def _transfer(soak: Soak, rng: random.Random) -> None:
    await _money("transfer", soak, rng)


async def _deposit(soak: Soak, rng: random.Random) -> None:
    await _money("deposit", soak, rng)


async def _withdraw(soak: Soak, rng: random.Random) -> None:
    await _money("withdraw", soak, rng)


async def _replay(soak: Soak, rng: random.Random) -> None:
    if not soak.recent:
        return
    sent, transfer_id = rng.choice(soak.recent)
    request = TransferRequest.of(
        sent.source, sent.destination, sent.amount, idempotency_key=sent.key
    )
    (outcome,) = await soak.transfers.transfer_many([request])
    if not isinstance(outcome, TransferRecord) or outcome.id != transfer_id:
        soak.problem(f"replay of {sent.key} returned {outcome}, not transfer {transfer_id}")


async def _balance(soak: Soak, rng: random.Random) -> None:
    await soak.accounts.balance(rng.choice(soak.account_ids))


async def _history(soak: Soak, rng: random.Random) -> None:
    await soak.accounts.history(rng.choice(soak.account_ids), limit=20)


async def _audit(soak: Soak, rng: random.Random) -> None:
    report = await soak.auditor.verify()
    for finding in report.problems:
        soak.problem(f"audit during the load: {finding}")


async def _deadline(soak: Soak, rng: random.Random) -> None:
    kind = rng.choice(["transfer", "deposit", "withdraw"])
    await soak.interrupted(soak.new_request(rng, kind), "deadline", rng)


async def _cancel(soak: Soak, rng: random.Random) -> None:
    kind = rng.choice(["transfer", "deposit", "withdraw"])
    await soak.interrupted(soak.new_request(rng, kind), "cancel", rng)


async def _job_stats(soak: Soak, rng: random.Random) -> None:
    stats = await soak.queue.stats()
    if stats.due > stats.queued or stats.expired_leases > stats.running:
        soak.problem(f"job figures that cannot be: {stats}")


async def _redeliver(soak: Soak, rng: random.Random) -> None:
    """Deliver a recent transfer's job once more, as a second worker or a retry would."""
    if not soak.recent:
        return
    _, transfer_id = rng.choice(soak.recent)
    job = ClaimedJob(
        id=0,
        kind=TRANSFER_COMPLETED,
        payload={"transfer_id": transfer_id},
        attempt=1,
        max_attempts=1,
        owner=f"soak-{soak.tag}-redelivery",
        lease_expires_at=soak.queue.now(),
    )
    notify = TransferNotifier()
    await run_in_transaction(soak.sessions, lambda session: notify(job, session))


OPERATIONS: dict[str, Operation] = {
    "transfer": _transfer,
    "deposit": _deposit,
    "withdraw": _withdraw,
    "replay": _replay,
    "balance": _balance,
    "history": _history,
    "audit": _audit,
    "deadline": _deadline,
    "cancel": _cancel,
    "job_stats": _job_stats,
    "redeliver": _redeliver,
}


async def soak(engine: AsyncEngine, config: SoakConfig, target: str = "") -> SoakReport:
    """Run one soak over `engine` (migrated) and return its report."""
    return await Soak(engine, config, target or engine.dialect.name).run()
