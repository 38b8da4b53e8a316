"""Events out of the ledger: the outbox relay against plain aio-pika, and end to end.

`pg-events`: N transfers' outbox events (staged, untimed, by real deposits through the
write path) published to RabbitMQ with publisher confirms, persistent, into one durable
queue. The reference is plain aio-pika publishing the same number of CloudEvents bodies
with confirms from a loop, 500 in flight at a time; beside it the same loop awaiting each
confirm before the next publish, the relay (services.OutboxRelay) draining the outbox, and
the job queue (one services.Worker) draining the same transfers' jobs.

`pg-events-latency`: transfers committed at a steady rate from this process while
`ledgerctl relay` and the example consumer (services.EventConsumer, statements) run in
processes of their own; each event's latency is from its transfer's commit (the write
returned) to the consumer's commit of its effect, on the machine's wall clock.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar, Final

import aio_pika
from sqlalchemy import delete, func, select

from db import BrokerSettings, DatabaseSettings, create_engine, create_session_factory
from lab.bench.checks import PASSED, Check
from lab.bench.config import BenchConfig
from lab.bench.ledger_data import MAX_AMOUNT, reset
from lab.bench.ops import Kind, Op, Tally
from lab.bench.variants.base import Variant
from lab.bench.workloads.base import Case, Workload, WorkloadEnv
from lab.bench.workloads.jobs import JobWorkers
from models import InboxMessage, Job, Notification, OutboxEvent, OutboxStatus, StatementLine
from services import (
    STATEMENTS,
    OutboxRelay,
    Topology,
    TransferRequest,
    TransferService,
)

IN_FLIGHT: Final = 500  # the pipelined peer's publishes awaiting confirms, as the relay's batch
STAGE_BATCH: Final = 500  # deposits per transaction while staging
DRAIN_TIMEOUT_S: Final = 300.0
TICK_S: Final = 0.01  # the steady producer writes every 10 ms


class _Broker:
    """The broker of this run, set by the workload's setup (variants get a target only)."""

    settings: ClassVar[BrokerSettings | None] = None

    @classmethod
    def get(cls) -> BrokerSettings:
        if cls.settings is None:
            raise RuntimeError("the events workload was not set up")
        return cls.settings


def _body(event_id: int) -> bytes:
    """A CloudEvent as the relay encodes a deposit's, for the peers to publish."""
    return json.dumps(
        {
            "specversion": "1.0",
            "id": str(event_id),
            "source": "urn:async-ledger:ledger",
            "type": "ledger.transfer.completed",
            "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "data": {
                "transfer_id": event_id,
                "source_account_id": None,
                "destination_account_id": 17,
                "amount": 1234,
                "currency": "EUR",
            },
        },
        separators=(",", ":"),
    ).encode()


def _message(event_id: int) -> aio_pika.Message:
    return aio_pika.Message(
        _body(event_id),
        content_type="application/cloudevents+json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(event_id),
        type="ledger.transfer.completed",
    )


class _PeerLoop(Variant):
    """Plain aio-pika: one connection, one channel in confirm mode, the bench's own exchange
    and durable queue; `in_flight` publishes awaited together (1: each confirm awaited)."""

    kinds = frozenset({Kind.EVENT})
    in_flight: ClassVar[int] = 1

    async def open(self) -> None:
        self._connection = await aio_pika.connect(_Broker.get().url)
        channel = await self._connection.channel(publisher_confirms=True)
        name = f"{_Broker.get().namespace}.peer"
        self._exchange = await channel.declare_exchange(
            name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self._queue = await channel.declare_queue(name, durable=True)
        await self._queue.bind(self._exchange, "#")

    async def close(self) -> None:
        await self._queue.delete(if_unused=False, if_empty=False)
        await self._exchange.delete()
        await self._connection.close()

    async def run(self, kind: Kind, ops: Sequence[Op], clients: int) -> Tally:
        tally = Tally()
        messages = [_message(i) for i in range(1, len(ops) + 1)]
        key = "ledger.transfer.completed"
        for start in range(0, len(messages), self.in_flight):
            chunk = messages[start : start + self.in_flight]
            began = time.perf_counter_ns()
            results = await asyncio.gather(
                *(self._exchange.publish(m, routing_key=key, mandatory=False) for m in chunk),
                return_exceptions=True,
            )
            elapsed = time.perf_counter_ns() - began
            for result in results:
                if isinstance(result, BaseException):
                    tally.fail(result, elapsed)
                else:
                    tally.record(1, elapsed)
        return tally


class PeerPipelined(_PeerLoop):
    """The reference."""

    key = "aio-pika-pipelined"
    label = f"aio-pika, {IN_FLIGHT} publishes in flight (confirms)"
    in_flight = IN_FLIGHT


class PeerAwaitEach(_PeerLoop):
    """The textbook loop: publish, await its confirm, next."""

    key = "aio-pika-await-each"
    label = "aio-pika, each confirm awaited (a plain loop)"
    in_flight = 1


class RelayDrain(Variant):
    """services.OutboxRelay on its own engine, until the staged outbox is empty."""

    key = "relay"
    label = "OutboxRelay (services), batch 500"
    kinds = frozenset({Kind.EVENT})

    async def open(self) -> None:
        # The statements queue, declared before each run (before_run), is where what the
        # relay publishes lands: one durable queue, as for the peers.
        self._engine = create_engine(DatabaseSettings(url=self.target.url, pool_size=self.pool))

    async def close(self) -> None:
        await self._engine.dispose()

    async def run(self, kind: Kind, ops: Sequence[Op], clients: int) -> Tally:
        tally = Tally()
        stop = asyncio.Event()
        done = asyncio.Event()
        confirmed = 0

        async def counted(ids: Sequence[int]) -> None:
            nonlocal confirmed
            confirmed += len(ids)
            if confirmed >= len(ops):
                done.set()

        relay = OutboxRelay(
            create_session_factory(self._engine), _Broker.get(), on_confirmed=counted
        )
        began = time.perf_counter_ns()
        task = asyncio.create_task(relay.run(stop))
        finished = asyncio.ensure_future(done.wait())
        await asyncio.wait([task, finished], timeout=DRAIN_TIMEOUT_S, return_when="FIRST_COMPLETED")
        finished.cancel()
        elapsed = time.perf_counter_ns() - began
        stop.set()
        stats = await task
        # Throughput only: the relay confirms whole batches, so a per-event latency would be
        # the batch's, the same for 500 events; the table shows none for this row.
        tally.completed += stats.published
        tally.value += stats.published
        if stats.published < len(ops):
            tally.fail(RuntimeError(f"{stats.published} of {len(ops)} published"), elapsed)
        return tally


class JobDrainPeer(JobWorkers):
    """The project's job queue draining the same transfers' jobs (one worker)."""

    key = "job-drain"
    label = "job queue: Worker draining the same transfers' jobs"
    kinds = frozenset({Kind.EVENT})

    async def run(self, kind: Kind, ops: Sequence[Op], clients: int) -> Tally:
        return await super().run(Kind.JOB, ops, clients)


async def _purge(broker: BrokerSettings) -> None:
    """Declare the statements queue (where the relay's events land) and empty it."""
    topology = Topology(broker.namespace)
    async with await aio_pika.connect(broker.url) as connection:
        channel = await connection.channel()
        queue, _ = await topology.declare_consumer(
            channel, STATEMENTS, ["ledger.transfer.completed"]
        )
        await queue.purge()
        unrouted = await channel.declare_queue(topology.unrouted, durable=True)
        await unrouted.purge()


async def _drop(broker: BrokerSettings) -> None:
    exchanges, queues = Topology(broker.namespace).all_names([STATEMENTS])
    async with await aio_pika.connect(broker.url) as connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        for exchange in exchanges:
            await channel.exchange_delete(exchange)


class _EventsWorkload(Workload):
    backend = "postgresql"
    kind = Kind.EVENT
    unit = "events/s"
    requires = ("asyncpg", "aio_pika")
    uses_broker = True

    async def setup(self, env: WorkloadEnv, config: BenchConfig) -> None:
        _Broker.settings = BrokerSettings(
            url=config.broker_url, namespace=f"bench-{secrets.token_hex(3)}"
        )

    async def teardown(self) -> None:
        if _Broker.settings is not None:
            await _drop(_Broker.settings)
            _Broker.settings = None

    def plan(self, env: WorkloadEnv, count: int, rng: random.Random) -> list[Op]:
        """One deposit per event: its transaction writes the event (and a job)."""
        ids = env.ledger.account_ids
        return [Op(rng.choice(ids), amount=rng.randint(1, MAX_AMOUNT)) for _ in range(count)]

    async def before_run(self, env: WorkloadEnv) -> None:
        async with env.engine.begin() as connection:
            for table in (StatementLine, InboxMessage, OutboxEvent, Notification, Job):
                await connection.execute(delete(table))
        await reset(env.engine, env.ledger)
        async with env.engine.begin() as connection:  # the reset's own deposits
            await connection.execute(delete(OutboxEvent))
            await connection.execute(delete(Job))
        await _purge(_Broker.get())


class EventThroughput(_EventsWorkload):
    """Reference: aio-pika with 500 publishes in flight."""

    name = "pg-events"
    title = "Events to RabbitMQ (PostgreSQL outbox): published with confirms"

    def cases(self, config: BenchConfig) -> list[Case]:
        return [
            Case(PeerPipelined, 1, 1, reference=True),
            Case(PeerAwaitEach, 1, 1),
            Case(RelayDrain, 1, 3),
            Case(JobDrainPeer, 1, 4),
        ]

    def size(self, config: BenchConfig) -> int:
        return config.event_ops

    async def stage(self, env: WorkloadEnv, ops: Sequence[Op]) -> None:
        transfers = TransferService(create_session_factory(env.engine))
        for start in range(0, len(ops), STAGE_BATCH):
            batch = ops[start : start + STAGE_BATCH]
            await transfers.transfer_many(
                [TransferRequest.of(None, op.account, op.amount) for op in batch]
            )

    async def check(self, env: WorkloadEnv, runs: Sequence[tuple[Sequence[Op], Tally]]) -> Check:
        problems = [
            f"{tally.completed} of {len(ops)} done"
            for ops, tally in runs
            if tally.completed != len(ops) or tally.error_count
        ]
        async with env.engine.connect() as connection:
            sent = await connection.scalar(
                select(func.count()).where(OutboxEvent.status == OutboxStatus.FAILED)
            )
        if sent:
            problems.append(f"{sent} outbox events failed")
        if not problems:
            return PASSED
        return Check(ok=False, text=", ".join(problems), problems=tuple(problems))


class SteadyEndToEnd(Variant):
    """Transfers at `rate` a second from this process; `ledgerctl relay` and the statements
    consumer (lab/bench/event_consumer.py) in processes of their own, as deployed; per
    event, from its transfer's commit returning to the consumer's commit of its effect."""

    key = "end-to-end"
    label = "deposit commit -> relay -> RabbitMQ -> consumer commit"
    kinds = frozenset({Kind.EVENT})
    rate: ClassVar[int] = 1000

    async def open(self) -> None:
        self._engine = create_engine(DatabaseSettings(url=self.target.url, pool_size=self.pool))

    async def close(self) -> None:
        await self._engine.dispose()

    async def run(self, kind: Kind, ops: Sequence[Op], clients: int) -> Tally:
        broker = _Broker.get()
        assert broker.url is not None
        env = {**os.environ, "BROKER_URL": broker.url, "BROKER_NAMESPACE": broker.namespace}
        url = self.target.url
        relay = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "cli", "--database-url", url, "relay"),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,  # its one-line notes; a lost event fails the row
        )
        consumer = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "lab.bench.event_consumer", url, broker.url, broker.namespace),
            stdout=asyncio.subprocess.PIPE,
        )
        applied: dict[str, int] = {}
        written: dict[int, int] = {}  # transfer id -> wall time its commit returned
        try:
            assert consumer.stdout is not None
            await consumer.stdout.readline()  # ready
            await asyncio.sleep(1.0)  # both connect and go idle before the clock starts
            producing = await self._produce(ops, written)
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            while len(applied) < len(written) and time.monotonic() < deadline:
                line = await asyncio.wait_for(consumer.stdout.readline(), timeout=DRAIN_TIMEOUT_S)
                if not line:
                    break
                event_id, when = line.split()
                applied.setdefault(event_id.decode(), int(when))
        finally:
            for process in (relay, consumer):
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                await process.wait()
        async with self._engine.connect() as connection:
            rows = (await connection.execute(select(OutboxEvent.id, OutboxEvent.data))).all()
        tally = Tally()
        for event_id, data in rows:
            sent = written.get(int(data["transfer_id"]))
            if sent is None:
                continue
            done = applied.get(str(event_id))
            if done is None:
                tally.fail(RuntimeError("an event never reached the consumer"), 0)
            else:
                tally.record(1, done - sent)
        tally.elapsed_s = producing
        return tally

    async def _produce(self, ops: Sequence[Op], written: dict[int, int]) -> float:
        """Deposits at `rate` a second, a batch every TICK_S; the seconds it took."""
        transfers = TransferService(create_session_factory(self._engine))
        per_tick = max(1, round(self.rate * TICK_S))
        loop = asyncio.get_running_loop()
        began = loop.time()
        for tick, start in enumerate(range(0, len(ops), per_tick)):
            await asyncio.sleep(max(0.0, began + tick * TICK_S - loop.time()))
            batch = ops[start : start + per_tick]
            outcomes = await transfers.transfer_many(
                [TransferRequest.of(None, op.account, op.amount) for op in batch]
            )
            now = time.time_ns()
            for outcome in outcomes:
                if not isinstance(outcome, Exception):
                    written[outcome.id] = now
        return loop.time() - began


class EventLatency(_EventsWorkload):
    """One row: the steady end-to-end run (its own reference)."""

    name = "pg-events-latency"
    title = "Events end to end on PostgreSQL at 1,000 events/s: commit to consumer commit"

    def cases(self, config: BenchConfig) -> list[Case]:
        return [Case(SteadyEndToEnd, 1, 2, reference=True)]

    def size(self, config: BenchConfig) -> int:
        return config.event_ops

    async def check(self, env: WorkloadEnv, runs: Sequence[tuple[Sequence[Op], Tally]]) -> Check:
        async with env.engine.connect() as connection:
            events = await connection.scalar(select(func.count()).select_from(OutboxEvent))
            inbox = await connection.scalar(select(func.count()).select_from(InboxMessage))
        problems = [f"{tally.error_count} events lost" for _, tally in runs if tally.error_count]
        if events != inbox:
            problems.append(f"{events} events, {inbox} applied")
        if not problems:
            return PASSED
        return Check(ok=False, text=", ".join(problems), problems=tuple(problems))


THROUGHPUT: Final = EventThroughput()
LATENCY: Final = EventLatency()
