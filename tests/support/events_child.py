"""A relay or a consumer in a process of its own, to be killed: the subject of
tests/events/test_processes.py.

    python -m tests.support.events_child relay|consume DATABASE_URL NAMESPACE [--pause]

With `--pause`, the relay stops right after the broker confirmed its first batch, before
marking it sent, and prints `confirmed ID ...`; the consumer stops right after its first
batch committed, before acknowledging it, and prints `committed ID ...`. The process then
waits there, so a SIGKILL lands exactly between the two. Without it, both run until
SIGTERM. `ready` is printed once the process is set up.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence

from db import BrokerSettings, DatabaseSettings, create_engine, create_session_factory
from services.consumer import EventConsumer
from services.relay import OutboxRelay
from services.statements import STATEMENTS, statement_handler
from tests.support.broker import BROKER_URL


async def main(mode: str, url: str, namespace: str, pause: bool) -> None:
    engine = create_engine(DatabaseSettings(url=url))
    sessions = create_session_factory(engine)
    broker = BrokerSettings(url=BROKER_URL, namespace=namespace)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def freeze(word: str, ids: Sequence[object]) -> None:
        print(word, *ids, flush=True)
        await asyncio.Event().wait()  # until killed

    async def confirmed(ids: Sequence[int]) -> None:
        await freeze("confirmed", ids)

    async def committed(ids: Sequence[str]) -> None:
        await freeze("committed", ids)

    runner: OutboxRelay | EventConsumer
    if mode == "relay":
        runner = OutboxRelay(
            sessions, broker, lease_seconds=1.0, on_confirmed=confirmed if pause else None
        )
    else:
        runner = EventConsumer(
            sessions,
            broker,
            STATEMENTS,
            statement_handler(),
            on_committed=committed if pause else None,
        )
    print("ready", flush=True)
    try:
        await runner.run(stop)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["relay", "consume"])
    parser.add_argument("url")
    parser.add_argument("namespace")
    parser.add_argument("--pause", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.mode, args.url, args.namespace, args.pause))
