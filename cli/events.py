"""`ledgerctl relay`, `ledgerctl consume` and `ledgerctl outbox`: events to and from RabbitMQ.

`relay` publishes the outbox to BROKER_URL until SIGINT or SIGTERM; `consume` runs the
example consumer (per-account statements) into the database of --database-url; `outbox`
shows the backlog and the events that could not be encoded, and puts mended ones back.
The broker being down is not an error for the first two: they say so in one line and
retry until it answers (docs/events.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from cli.commands import _jsonable, emit
from cli.context import AppContext
from cli.errors import CommandError
from cli.inputs import parse_id, whole_number
from db import BrokerSettings
from services.event_outbox import EventOutbox

Handler = Callable[[AppContext, argparse.Namespace], Awaitable[int]]
AddCommand = Callable[[str, Handler, str], argparse.ArgumentParser]

EVENTS_NOT_INSTALLED = (
    "events need aio-pika: pip install 'async-ledger[events]' (or `make install` in a checkout)"
)


def add_commands(add: AddCommand) -> None:
    """Register `relay`, `consume` and `outbox` on the ledgerctl parser."""
    relay = add("relay", relay_command, "publish the event outbox to BROKER_URL until SIGTERM")
    relay.add_argument(
        "--batch-size", type=whole_number, default=500, help="events per batch (default 500)"
    )
    relay.add_argument(
        "--lease-seconds", type=float, default=10.0, help="lease of the publishing relay (10)"
    )
    consume = add(
        "consume", consume_command, "apply ledger events to per-account statements until SIGTERM"
    )
    consume.add_argument(
        "--batch-size", type=whole_number, default=200, help="messages per transaction (200)"
    )
    outbox = add("outbox", outbox_command, "show the event outbox: backlog and failed events")
    outbox.add_argument("--failed", default="10", help="failed events to list (default 10)")
    outbox.add_argument(
        "--retry", nargs="+", default=None, metavar="EVENT_ID", help="put failed events back"
    )
    outbox.add_argument("--json", action="store_true", help="print JSON")


def _broker() -> BrokerSettings:
    try:
        import aio_pika  # noqa: F401  (the events extra is optional)
    except ImportError:
        raise CommandError(EVENTS_NOT_INSTALLED) from None
    broker = BrokerSettings.from_env()
    if not broker.enabled:
        raise CommandError("set BROKER_URL=amqp://user:password@host:5672/ to reach RabbitMQ")
    return broker


def _log_to_stderr(name: str) -> None:
    # One line per event worth telling (broker down, reconnected, leadership), no traceback.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"ledgerctl {name}: %(message)s"))
    for logger_name in ("services", "db"):
        logger = logging.getLogger(logger_name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    # aio-pika logs a lost connection with a traceback; the services say it in one line.
    for noisy in ("aio_pika", "aiormq"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)


async def _until_signalled(run: Callable[[asyncio.Event], Awaitable[Any]], line: str) -> Any:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    print(line, flush=True)
    try:
        return await run(stop)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


async def relay_command(app: AppContext, args: argparse.Namespace) -> int:
    """ledgerctl relay."""
    broker = _broker()
    from services.relay import OutboxRelay

    _log_to_stderr("relay")
    relay = OutboxRelay(
        app.sessions,
        broker,
        batch_size=args.batch_size,
        lease_seconds=args.lease_seconds,
        listen_url=app.settings.listen_url,
    )
    stats = await _until_signalled(
        relay.run,
        f"relay {relay.relay_id}: {app.settings.display_url} -> {broker.display_url} "
        f"(exchange {relay.topology.exchange}); stop with Ctrl-C or SIGTERM",
    )
    print(f"relay stopped: {stats}", flush=True)
    return 0


async def consume_command(app: AppContext, args: argparse.Namespace) -> int:
    """ledgerctl consume."""
    broker = _broker()
    from services.consumer import EventConsumer
    from services.statements import STATEMENTS, statement_handler

    _log_to_stderr("consume")
    consumer = EventConsumer(
        app.sessions, broker, STATEMENTS, statement_handler(), batch_size=args.batch_size
    )
    stats = await _until_signalled(
        consumer.run,
        f"consumer {STATEMENTS}: {broker.display_url} (queue "
        f"{consumer.topology.queue(STATEMENTS)}) -> {app.settings.display_url}; "
        "stop with Ctrl-C or SIGTERM",
    )
    print(f"consumer stopped: {stats}", flush=True)
    return 0


async def outbox_command(app: AppContext, args: argparse.Namespace) -> int:
    """ledgerctl outbox [--retry ID ...]."""
    outbox = EventOutbox(app.sessions)
    if args.retry is not None:
        ids = [parse_id(value, "event id") for value in args.retry]
        count = await outbox.retry(ids)
        print(f"{count} failed events put back to pending")
        return 0
    state = await outbox.state(
        failed=parse_id(args.failed, "--failed") if args.failed != "0" else 0
    )
    relay = f"relay {state.relay} publishing" if state.relay else "no relay publishing"
    lines = [f"outbox: {state.pending} pending, {state.failed} failed; {relay}"]
    lines += [
        f"  failed event {e.id} {e.type} at {e.created_at:%Y-%m-%d %H:%M:%S}Z: {e.error}"
        for e in state.failed_events
    ]
    emit(args, _jsonable(state), "\n".join(lines))
    return 0
