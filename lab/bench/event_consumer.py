"""The statements consumer in a process of its own, reporting when it commits each event:
the far end of the pg-events-latency workload.

    python -m lab.bench.event_consumer DATABASE_URL BROKER_URL NAMESPACE

Prints `ready`, then one line `EVENT_ID WALL_NS` per event whose effect committed (the wall
clock, comparable across the processes of one machine), until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Sequence

from db import BrokerSettings, DatabaseSettings, create_engine, create_session_factory
from services import STATEMENTS, EventConsumer, statement_handler


async def main(url: str, broker_url: str, namespace: str) -> None:
    engine = create_engine(DatabaseSettings(url=url, pool_size=2))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def committed(ids: Sequence[str]) -> None:
        now = time.time_ns()
        sys.stdout.write("".join(f"{event_id} {now}\n" for event_id in ids))
        sys.stdout.flush()

    consumer = EventConsumer(
        create_session_factory(engine),
        BrokerSettings(url=broker_url, namespace=namespace),
        STATEMENTS,
        statement_handler(),
        on_committed=committed,
    )
    print("ready", flush=True)
    try:
        await consumer.run(stop)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
