"""Use case: relay the outbox to the broker, in order, each event counted once confirmed.

A relay repeats: claim the lowest pending events (one transaction, which also renews its
lease), encode each as a CloudEvent, publish them all on a channel in publisher-confirm
mode (pipelined: the broker confirms them as they arrive), and mark sent, in one UPDATE,
the run of events it confirmed from the first on. Rows that cannot be encoded are marked
failed with the reason instead. Delivery is at least once: a relay that dies between the
broker's confirm and its mark publishes those events again after a restart, and
consumers de-duplicate by event id (services/consumer.py).

Order: only the relay holding the outbox lease (`relay_leases`) publishes; others stand
by and take over once it releases the lease (on stop) or lets it expire (killed). The
holder publishes in id order and marks only a confirmed prefix, so the first delivery of
each event follows id order, which for the events of one account is commit order
(repositories/transfers.py). A stalled holder whose lease was taken over can only publish
again what its successor already published: duplicates, never reordered first copies.

Idle, the relay holds no connection from the pool: it waits for a wake-up (NOTIFY on
PostgreSQL; the in-process signal or PRAGMA data_version on SQLite), polling every
`poll_interval` (and at least every third of the lease, which it renews) in case one was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractExchange
from sqlalchemy.ext.asyncio import AsyncSession

from db import BrokerSettings
from db.broker import BROKER_ERRORS, Topology, connect, describe, pause, reconnect_delay
from db.wakeups import OUTBOX_CHANNEL, Wakeups
from models import utcnow
from repositories import OutboxEventRepository, PendingEvent, RelayLeaseRepository
from services import cloud_events, validation
from services.errors import InvalidInput, LedgerError
from services.event_outbox import LEASE_NAME
from services.jobs import Clock, describe_error
from services.results import RelayStats
from services.transactions import Sessions, run_in_transaction

log = logging.getLogger(__name__)

MAX_BATCH_SIZE: Final = 5000
PUBLISH_TIMEOUT_S: Final = 30.0
SQLITE_WATCH_INTERVAL_S: Final = 0.05
PIPELINE_DEPTH: Final = 2

# Awaited after the broker confirmed a batch and before it is marked sent (tests stop a
# relay there); gets the confirmed event ids.
ConfirmedHook = Callable[[Sequence[int]], Awaitable[None]]


@dataclass(slots=True)
class _Batch:
    """A published batch: the ids confirmed from its first on, the events that could not
    be encoded (with the reason), and the broker error that cut it short."""

    confirmed: list[int] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)
    error: BaseException | None = None


class OutboxRelay:
    """Publishes the outbox of `sessions`' database to the broker of `broker`.

    Run it with `await relay.run(stop)` (until `stop` is set), or `start()` it as a
    background task and `await close()` (the app's lifespan). `batch_size` events are
    claimed, published and marked at a time; `lease_seconds` is how long a killed relay
    keeps the others waiting.
    """

    def __init__(
        self,
        sessions: Sessions,
        broker: BrokerSettings,
        *,
        batch_size: int = 500,
        lease_seconds: float = 10.0,
        poll_interval: float = 5.0,
        relay_id: str | None = None,
        listen_url: str | None = None,
        source: str = cloud_events.DEFAULT_SOURCE,
        clock: Clock = utcnow,
        on_confirmed: ConfirmedHook | None = None,
    ) -> None:
        if not broker.enabled:
            raise InvalidInput("the relay needs a broker: set BROKER_URL (amqp://…)")
        validation.bounded_int(batch_size, "batch_size", MAX_BATCH_SIZE)
        validation.seconds(lease_seconds, "lease_seconds")
        validation.seconds(poll_interval, "poll_interval")
        self.sessions = sessions
        self.broker = broker
        self.topology = Topology(broker.namespace)
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.poll_interval = min(poll_interval, lease_seconds / 3)
        self.relay_id = relay_id if relay_id is not None else _process_id()
        self.source = source
        self._listen_url = listen_url
        self._clock = clock
        self._on_confirmed = on_confirmed
        self._woken = asyncio.Event()
        self._lost = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[RelayStats] | None = None
        self._published = self._failed = self._batches = self._reconnects = 0
        self._leader = self._connected = False
        self._renewed_at: datetime | None = None
        self._renew_every = timedelta(seconds=lease_seconds / 3)

    @property
    def stats(self) -> RelayStats:
        """Counts so far; safe to read while `run` is going."""
        return RelayStats(
            relay_id=self.relay_id,
            published=self._published,
            failed=self._failed,
            batches=self._batches,
            reconnects=self._reconnects,
            leader=self._leader,
            connected=self._connected,
        )

    def wake(self) -> None:
        """Something was committed to the outbox: claim now rather than at the next poll."""
        self._woken.set()

    def start(self) -> None:
        """Run in a background task until `close()`."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(self._stop), name=f"relay-{self.relay_id}")
            self._task.add_done_callback(self._report_crash)

    def _report_crash(self, task: asyncio.Task[RelayStats]) -> None:
        # Broker and database failures are retried inside run(); what ends it early is a
        # bug, which must not go unnoticed in a background task (close() re-raises it).
        if not task.cancelled() and task.exception() is not None:
            log.error("relay %s stopped: %r", self.relay_id, task.exception())

    async def close(self) -> RelayStats:
        """Stop the background task: the batch in flight finishes, the lease is released."""
        self._stop.set()
        if self._task is None:
            return self.stats
        return await self._task

    async def run(self, stop: asyncio.Event) -> RelayStats:
        """Relay until `stop` is set; then release the lease and close the connection."""
        engine = self.sessions.kw["bind"]
        interval = (
            SQLITE_WATCH_INTERVAL_S if engine.dialect.name == "sqlite" else self.poll_interval
        )
        wakeups = Wakeups(
            engine,
            self.wake,
            poll_interval=interval,
            listen_url=self._listen_url,
            channel=OUTBOX_CHANNEL,
        )
        failures = 0  # broker sessions in a row that ended in an error before any batch
        try:
            async with wakeups:
                while not stop.is_set():
                    connection = await connect(self.broker, stop, who=f"relay {self.relay_id}")
                    if connection is None:
                        break
                    self._connected = True
                    batches = self._batches
                    try:
                        await self._relay(connection, stop)
                    except BROKER_ERRORS as exc:
                        if stop.is_set():
                            break
                        self._reconnects += 1
                        failures = 1 if self._batches > batches else failures + 1
                        if failures == 1:
                            log.warning(
                                "relay %s: broker connection lost (%s); reconnecting",
                                self.relay_id,
                                describe(exc),
                            )
                        # Also when connecting succeeds at once but the session fails (a
                        # refused declaration, say): never a tight loop against the broker.
                        await pause(stop, reconnect_delay(failures))
                    finally:
                        self._connected = False
                        with contextlib.suppress(*BROKER_ERRORS):
                            await connection.close()
        finally:
            await self._release()
        return self.stats

    async def _relay(self, connection: AbstractConnection, stop: asyncio.Event) -> None:
        self._lost.clear()
        connection.close_callbacks.add(lambda *_: self._lost.set())
        channel = await connection.channel(publisher_confirms=True)
        exchange = await self.topology.declare_exchange(channel)
        database_failures = 0
        while not stop.is_set():
            if self._lost.is_set():
                raise ConnectionError("the broker closed the connection")
            self._woken.clear()
            try:
                # Until the outbox is empty (or another relay holds the lease); then wait
                # for a wake-up, which returns at once if one came while draining.
                await self._drain(exchange, stop)
                database_failures = 0
            except LedgerError as exc:  # the database is down, busy or failing over
                database_failures += 1
                if database_failures == 1:
                    log.warning("relay %s: %s; retrying with backoff", self.relay_id, exc)
                await self._wait(stop, reconnect_delay(database_failures))
                continue
            await self._wait(stop, self.poll_interval)

    async def _drain(self, exchange: AbstractExchange, stop: asyncio.Event) -> None:
        """Publish batches until the outbox is empty or another relay holds the lease.

        Two batches are in flight at once: the next is claimed and published while the
        broker confirms the previous one, so the channel never idles waiting for a round
        trip. Every claim starts from the lowest pending id, skipping only the events in
        flight, so an event that committed late with a lower id goes out in the next batch,
        before anything of its accounts that committed after it (docs/events.md).
        """
        in_flight: deque[tuple[asyncio.Task[_Batch], list[int]]] = deque()
        flying: set[int] = set()
        try:
            while True:
                if len(in_flight) < PIPELINE_DEPTH and not stop.is_set():
                    events = await self._claim(flying)
                    if events is None:
                        return
                    if events:
                        ids = [event.id for event in events]
                        flying.update(ids)
                        task = asyncio.create_task(self._publish(exchange, events))
                        in_flight.append((task, ids))
                        continue
                if not in_flight:
                    return
                task, ids = in_flight.popleft()
                await self._settle(await task)
                flying.difference_update(ids)
        finally:
            for task, _ in in_flight:
                task.cancel()
            await asyncio.gather(*(task for task, _ in in_flight), return_exceptions=True)

    async def _claim(self, flying: set[int]) -> list[PendingEvent] | None:
        """The lowest pending events not in `flying` (being published), renewing the lease
        when a third of it has passed; None if another relay holds the lease."""
        now = self._clock()
        renew = self._renewed_at is None or now - self._renewed_at >= self._renew_every

        async def work(session: AsyncSession) -> list[PendingEvent] | None:
            if renew:
                until = now + timedelta(seconds=self.lease_seconds)
                leases = RelayLeaseRepository(session)
                if not await leases.acquire(LEASE_NAME, self.relay_id, now=now, until=until):
                    return None
            pending = await OutboxEventRepository(session).pending(self.batch_size + len(flying))
            return [event for event in pending if event.id not in flying][: self.batch_size]

        # Without a lease to renew the claim only reads: on SQLite it then takes no write
        # lock, so writers and consumers of the same file do not queue behind it.
        events = await run_in_transaction(self.sessions, work, read_only=not renew)
        if renew:
            self._renewed_at = None if events is None else now
        if (events is not None) != self._leader:
            self._leader = events is not None
            log.info("relay %s: %s", self.relay_id, "publishing" if self._leader else "standing by")
        return events

    async def _publish(self, exchange: AbstractExchange, events: list[PendingEvent]) -> _Batch:
        """Encode and publish `events`; what the broker confirmed, from the first on."""
        batch = _Batch()
        encoded: list[tuple[int, aio_pika.Message, str]] = []
        for event in events:
            try:
                body = cloud_events.encode(
                    event.id, event.type, event.data, event.created_at, self.source
                )
            except cloud_events.UnencodableEvent as exc:
                batch.failures.append((event.id, describe_error(f"cannot encode: {exc}")))
                log.warning("relay %s: event %d failed: %s", self.relay_id, event.id, exc)
                continue
            message = aio_pika.Message(
                body,
                content_type=cloud_events.CONTENT_TYPE,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=str(event.id),
                timestamp=event.created_at,
                type=event.type,
            )
            encoded.append((event.id, message, event.type))
        results = await asyncio.gather(
            *(
                exchange.publish(
                    message, routing_key=key, mandatory=False, timeout=PUBLISH_TIMEOUT_S
                )
                for _, message, key in encoded
            ),
            return_exceptions=True,
        )
        # Only the run confirmed from the first on counts: an event after a refused one
        # stays pending too, so nothing is first delivered ahead of an earlier event.
        for (event_id, _, _), result in zip(encoded, results, strict=True):
            if isinstance(result, BaseException):
                batch.error = result
                break
            batch.confirmed.append(event_id)
        return batch

    async def _settle(self, batch: _Batch) -> None:
        """Mark what `batch` confirmed sent and its unencodable events failed; then raise
        the broker error that cut it short, if any (the later batches are not marked)."""
        if self._on_confirmed is not None and batch.confirmed:
            await self._on_confirmed(batch.confirmed)
        await self._mark(batch.confirmed, batch.failures)
        self._batches += 1
        self._published += len(batch.confirmed)
        self._failed += len(batch.failures)
        if batch.error is not None:
            raise batch.error

    async def _mark(self, sent: list[int], failures: list[tuple[int, str]]) -> None:
        if not sent and not failures:
            return

        async def work(session: AsyncSession) -> None:
            now = self._clock()
            repo = OutboxEventRepository(session)
            await repo.mark_sent(sent, now=now)
            await repo.mark_failed(failures)

        await run_in_transaction(self.sessions, work)

    async def _wait(self, stop: asyncio.Event, seconds: float) -> None:
        waits = [asyncio.ensure_future(e.wait()) for e in (stop, self._woken, self._lost)]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def _release(self) -> None:
        self._leader = False
        self._renewed_at = None

        async def work(session: AsyncSession) -> None:
            await RelayLeaseRepository(session).release(LEASE_NAME, self.relay_id)

        try:
            await run_in_transaction(self.sessions, work)
        except LedgerError as exc:  # it expires by itself
            log.warning("relay %s: could not release the lease (%s)", self.relay_id, exc)


def _process_id() -> str:
    # host:pid:random, like a worker's id: two relays never share the lease by accident.
    return f"{socket.gethostname()[:150]}:{os.getpid()}:{secrets.token_hex(3)}"
