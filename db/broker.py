"""The RabbitMQ side of events: the topology, declared by the code, and connecting with backoff.

Topology, every name prefixed by the namespace (BROKER_NAMESPACE, default `ledger`):

- `<ns>.events`: durable topic exchange the relay publishes to, routing key = event type;
  its alternate exchange `<ns>.events.unrouted` (fanout) keeps, in the durable queue of
  the same name, whatever no queue was bound for, instead of dropping it.
- per consumer `<c>`: the durable queue `<ns>.<c>` bound to the event types it handles,
  dead-lettering to `<ns>.dead` (direct), whose durable queue `<ns>.<c>.dead` receives
  the messages `<c>` refused, each with the reason in its `x-ledger-dead-reason` header.

Declaring is idempotent, so the relay and every consumer declare what they use at each
(re)connection, and a fresh broker needs no set-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractQueue,
    ExchangeType,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from db.broker_settings import BrokerSettings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S: Final = 5.0
DEAD_REASON_HEADER: Final = "x-ledger-dead-reason"
DEAD_CONSUMER_HEADER: Final = "x-ledger-dead-consumer"
# Whatever aio-pika raises when the broker or the connection to it goes away (OSError,
# ConnectionError and the AMQP errors among them): reconnect and carry on.
BROKER_ERRORS: Final = CONNECTION_EXCEPTIONS
RECONNECT_BASE_S: Final = 0.1
RECONNECT_CAP_S: Final = 5.0


def reconnect_delay(attempt: int) -> float:
    """Seconds before retry number `attempt` (from 1): doubling from 0.1 s up to 5 s, each
    between half and all of that, so that clients cut off together do not return together."""
    ceiling = min(RECONNECT_CAP_S, RECONNECT_BASE_S * 2.0 ** max(attempt - 1, 0))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass(frozen=True, slots=True)
class Topology:
    """The exchange and queue names of one namespace, and their declarations."""

    namespace: str = "ledger"

    @property
    def exchange(self) -> str:
        """The exchange the relay publishes every event to."""
        return f"{self.namespace}.events"

    @property
    def unrouted(self) -> str:
        """The alternate exchange, and its queue, for events no queue was bound for."""
        return f"{self.namespace}.events.unrouted"

    @property
    def dead_letter_exchange(self) -> str:
        """Where consumers send the messages they refuse."""
        return f"{self.namespace}.dead"

    def queue(self, consumer: str) -> str:
        """The queue `consumer` reads."""
        return f"{self.namespace}.{consumer}"

    def dead_queue(self, consumer: str) -> str:
        """The queue of the messages `consumer` refused."""
        return f"{self.namespace}.{consumer}.dead"

    def all_names(self, consumers: Sequence[str]) -> tuple[list[str], list[str]]:
        """(exchanges, queues) this topology declares for `consumers`."""
        exchanges = [self.exchange, self.unrouted, self.dead_letter_exchange]
        queues = [self.unrouted]
        for consumer in consumers:
            queues += [self.queue(consumer), self.dead_queue(consumer)]
        return exchanges, queues

    async def declare_exchange(self, channel: AbstractChannel) -> AbstractExchange:
        """The events exchange with its alternate exchange and queue; the events exchange."""
        unrouted = await channel.declare_exchange(self.unrouted, ExchangeType.FANOUT, durable=True)
        parked = await channel.declare_queue(self.unrouted, durable=True)
        await parked.bind(unrouted)
        return await channel.declare_exchange(
            self.exchange,
            ExchangeType.TOPIC,
            durable=True,
            arguments={"alternate-exchange": self.unrouted},
        )

    async def declare_consumer(
        self, channel: AbstractChannel, consumer: str, bindings: Sequence[str]
    ) -> tuple[AbstractQueue, AbstractExchange]:
        """`consumer`'s queue bound to `bindings` (topic patterns) and its dead-letter
        queue; the queue and the dead-letter exchange."""
        exchange = await self.declare_exchange(channel)
        dead = await channel.declare_exchange(
            self.dead_letter_exchange, ExchangeType.DIRECT, durable=True
        )
        dead_queue = await channel.declare_queue(self.dead_queue(consumer), durable=True)
        await dead_queue.bind(dead, routing_key=self.dead_queue(consumer))
        queue = await channel.declare_queue(
            self.queue(consumer),
            durable=True,
            arguments={
                "x-dead-letter-exchange": self.dead_letter_exchange,
                "x-dead-letter-routing-key": self.dead_queue(consumer),
            },
        )
        for pattern in bindings:
            await queue.bind(exchange, routing_key=pattern)
        return queue, dead


def describe(exc: BaseException) -> str:
    """A broker failure in one line: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


async def connect(
    settings: BrokerSettings, stop: asyncio.Event, *, who: str
) -> AbstractConnection | None:
    """Connect to the broker, retrying with backoff until it answers or `stop` is set
    (then None). The first failure in a row is logged as one warning line (the URL's
    password masked), the retries quietly, the recovery as one line."""
    if settings.url is None:
        raise ValueError("no BROKER_URL")
    attempt = 0
    while not stop.is_set():
        try:
            connection = await aio_pika.connect(settings.url, timeout=CONNECT_TIMEOUT_S)
        except BROKER_ERRORS as exc:
            attempt += 1
            delay = reconnect_delay(attempt)
            if attempt == 1:
                log.warning(
                    "%s: broker unreachable at %s (%s); retrying with backoff up to %gs",
                    who,
                    settings.display_url,
                    describe(exc),
                    RECONNECT_CAP_S,
                )
            await pause(stop, delay)
            continue
        if attempt:
            log.warning("%s: connected to %s after %d retries", who, settings.display_url, attempt)
        return connection
    return None


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
