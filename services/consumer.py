"""Use case: consume events from the broker into a database, each effect applied once.

Delivery from the broker is at least once (a relay may publish again, the broker redelivers
what was not acknowledged). The consumer makes the effect happen once: for each batch of
deliveries it inserts an inbox row (consumer, message id) per message in the same
transaction as the effect, skipping the effect of every id the inbox already holds, and
acknowledges the batch only after that transaction committed. Killed before the ack, it
gets the messages again and the inbox turns them into no-ops.

A message it cannot read (not JSON, not a CloudEvent, an unknown type, data of the wrong
shape) or whose effect fails is published to the dead-letter queue with the reason in a
header, confirmed, and only then acknowledged: it never blocks the queue or stops the
consumer. A lost broker connection or an unreachable database is retried with backoff;
unacknowledged messages stay with the broker meanwhile.

Order: a consumer applies deliveries in the order its queue hands them out; with one
consumer per queue that is the relay's order (per account: commit order, docs/events.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractExchange, AbstractIncomingMessage
from sqlalchemy.ext.asyncio import AsyncSession

from db import BrokerSettings
from db.broker import (
    BROKER_ERRORS,
    DEAD_CONSUMER_HEADER,
    DEAD_REASON_HEADER,
    Topology,
    connect,
    describe,
    pause,
    reconnect_delay,
)
from models import utcnow
from models.inbox_message import CONSUMER_MAX_LENGTH, MESSAGE_ID_MAX_LENGTH
from repositories import InboxRepository
from services import cloud_events, validation
from services.errors import DatabaseBusy, DatabaseUnavailable, InvalidInput, OperationTimeout
from services.event_handler import EventHandler
from services.jobs import describe_error
from services.results import ConsumerStats
from services.transactions import Sessions, run_in_transaction

log = logging.getLogger(__name__)

MAX_BATCH_SIZE: Final = 1000
# Failures after which the same batch can succeed: wait and run it again, never dead-letter.
_RETRYABLE: Final = (DatabaseUnavailable, DatabaseBusy, OperationTimeout)

CommittedHook = Callable[[Sequence[str]], Awaitable[None]]


@dataclass(slots=True)
class _Delivery:
    message: AbstractIncomingMessage
    event_id: str | None = None
    parsed: Any = None
    reason: str | None = None  # why it goes to the dead-letter queue


class EventConsumer:
    """Consumes the queue of consumer `name` (declared with its bindings and dead-letter
    queue on each connection) into `sessions`' database with `handler`.

    At most `batch_size` deliveries share a transaction; the broker sends up to
    `2 * batch_size` ahead (prefetch), so the next batch is waiting while one commits.
    """

    def __init__(
        self,
        sessions: Sessions,
        broker: BrokerSettings,
        name: str,
        handler: EventHandler,
        *,
        batch_size: int = 200,
        on_committed: CommittedHook | None = None,
    ) -> None:
        if not broker.enabled:
            raise InvalidInput("a consumer needs a broker: set BROKER_URL (amqp://…)")
        consumer = validation.text(name, "consumer name", CONSUMER_MAX_LENGTH, required=True)
        assert consumer is not None
        self.sessions = sessions
        self.broker = broker
        self.name = consumer
        self.handler = handler
        self.batch_size = validation.bounded_int(batch_size, "batch_size", MAX_BATCH_SIZE)
        self.topology = Topology(broker.namespace)
        self._on_committed = on_committed
        self._arrived: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._lost = asyncio.Event()
        self._applied = self._duplicates = self._dead = self._batches = self._reconnects = 0

    @property
    def stats(self) -> ConsumerStats:
        """Counts so far; safe to read while `run` is going."""
        return ConsumerStats(
            consumer=self.name,
            applied=self._applied,
            duplicates=self._duplicates,
            dead_lettered=self._dead,
            batches=self._batches,
            reconnects=self._reconnects,
        )

    async def run(self, stop: asyncio.Event) -> ConsumerStats:
        """Consume until `stop` is set; the batch in hand is finished first."""
        who = f"consumer {self.name}"
        failures = 0  # broker sessions in a row that ended in an error before any batch
        while not stop.is_set():
            connection = await connect(self.broker, stop, who=who)
            if connection is None:
                break
            batches = self._batches
            try:
                await self._consume(connection, stop)
            except BROKER_ERRORS as exc:
                if stop.is_set():
                    break
                self._reconnects += 1
                failures = 1 if self._batches > batches else failures + 1
                if failures == 1:
                    log.warning("%s: broker connection lost (%s); reconnecting", who, describe(exc))
                await pause(stop, reconnect_delay(failures))
            finally:
                with contextlib.suppress(*BROKER_ERRORS):
                    await connection.close()
        return self.stats

    async def _consume(self, connection: AbstractConnection, stop: asyncio.Event) -> None:
        self._lost.clear()
        connection.close_callbacks.add(lambda *_: self._lost.set())
        # Deliveries of a closed channel cannot be acknowledged: the broker sends them again.
        self._arrived = asyncio.Queue()
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=2 * self.batch_size)
        bindings = sorted(self.handler.types)
        queue, dead = await self.topology.declare_consumer(channel, self.name, bindings)
        await queue.consume(self._arrived.put)
        while not stop.is_set():
            first = await self._next(stop)
            if first is None:
                continue
            batch = [first]
            while len(batch) < self.batch_size and not self._arrived.empty():
                batch.append(self._arrived.get_nowait())
            await self._settle([_Delivery(m) for m in batch], dead, stop)

    async def _next(self, stop: asyncio.Event) -> AbstractIncomingMessage | None:
        if self._lost.is_set():
            raise ConnectionError("the broker closed the connection")
        getting = asyncio.ensure_future(self._arrived.get())
        waits = [
            getting,
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self._lost.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits[1:]:
                waiting.cancel()
        if getting.done():
            return getting.result()
        getting.cancel()
        if self._lost.is_set():
            raise ConnectionError("the broker closed the connection")
        return None

    async def _settle(
        self, batch: list[_Delivery], dead: AbstractExchange, stop: asyncio.Event
    ) -> None:
        """Decode, apply in one transaction, dead-letter the refused, then ack them all."""
        for delivery in batch:
            self._read(delivery)
        readable = [d for d in batch if d.reason is None]
        try:
            await self._apply_retrying(readable, stop)
        except ConnectionError:
            raise
        except Exception as exc:  # the effect itself failed: find the culprit(s)
            if len(readable) == 1:
                readable[0].reason = describe_error(f"the effect failed: {exc}")
            else:
                for one in readable:
                    try:
                        await self._apply_retrying([one], stop)
                    except ConnectionError:
                        raise
                    except Exception as alone:
                        one.reason = describe_error(f"the effect failed: {alone}")
        if self._on_committed is not None:
            await self._on_committed([d.event_id or "" for d in readable if d.reason is None])
        for delivery in batch:
            if delivery.reason is not None:
                await self._dead_letter(dead, delivery)
        self._batches += 1
        await batch[-1].message.ack(multiple=True)

    async def _apply_retrying(self, deliveries: Sequence[_Delivery], stop: asyncio.Event) -> None:
        """`_apply`, run again with backoff for as long as the database is unavailable or
        busy (the deliveries stay unacknowledged meanwhile)."""
        failures = 0
        while True:
            try:
                await self._apply(deliveries)
                return
            except _RETRYABLE as exc:
                failures += 1
                if failures == 1:
                    log.warning("consumer %s: %s; retrying with backoff", self.name, exc)
                if stop.is_set() or self._lost.is_set():
                    raise ConnectionError("stopped while the database was unavailable") from exc
                await asyncio.sleep(reconnect_delay(failures))

    def _read(self, delivery: _Delivery) -> None:
        try:
            event = cloud_events.decode(delivery.message.body)
            if len(event.id) > MESSAGE_ID_MAX_LENGTH:
                raise cloud_events.MalformedEvent(f"id longer than {MESSAGE_ID_MAX_LENGTH}")
            if event.type not in self.handler.types:
                raise cloud_events.MalformedEvent(f"unknown event type {event.type!r}")
            delivery.event_id = event.id
            delivery.parsed = self.handler.parse(event)
        except cloud_events.MalformedEvent as exc:
            delivery.reason = describe_error(f"malformed: {exc}")
        except InvalidInput as exc:
            delivery.reason = describe_error(f"wrong schema: {exc}")

    async def _apply(self, deliveries: Sequence[_Delivery]) -> None:
        if not deliveries:
            return

        async def work(session: AsyncSession) -> int:
            ids = [d.event_id for d in deliveries if d.event_id is not None]
            new = await InboxRepository(session).record_new(self.name, ids, now=utcnow())
            fresh = []
            for delivery in deliveries:
                if delivery.event_id in new:
                    new.discard(delivery.event_id)  # a duplicate within the batch: once
                    fresh.append(delivery.parsed)
            await self.handler.apply(session, fresh)
            return len(fresh)

        applied = await run_in_transaction(self.sessions, work)
        self._applied += applied
        self._duplicates += len(deliveries) - applied

    async def _dead_letter(self, dead: AbstractExchange, delivery: _Delivery) -> None:
        original = delivery.message
        headers = dict(original.headers or {})
        headers[DEAD_REASON_HEADER] = delivery.reason or "refused"
        headers[DEAD_CONSUMER_HEADER] = self.name
        await dead.publish(
            aio_pika.Message(
                original.body,
                headers=headers,
                content_type=original.content_type,
                message_id=original.message_id,
                type=original.type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=self.topology.dead_queue(self.name),
        )
        self._dead += 1
        log.warning("consumer %s: dead-lettered a message: %s", self.name, delivery.reason)
