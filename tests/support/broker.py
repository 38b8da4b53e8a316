"""The RabbitMQ the event tests use: reachability (skip with a how-to, or fail in CI), a
namespace of its own per test, and a broker restart that always restores the broker."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import pytest

from db import BrokerSettings
from db.broker import Topology
from services.statements import STATEMENTS
from tests.support.databases import IN_CI

BROKER_URL = os.environ.get("TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
HOW_TO_ENABLE = (
    f"RabbitMQ is not reachable at {BROKER_URL.split('@')[-1]}; start one there "
    "(`rabbitmq-server -detached`, or `docker run -p 5672:5672 rabbitmq`) or set "
    "TEST_BROKER_URL=amqp://user:password@host:5672/ to run the event tests"
)
_checked: list[str | None] = []


async def broker_unreachable_reason() -> str | None:
    """None if the broker answers, else why not (with how to fix it)."""
    if not _checked:
        try:
            connection = await aio_pika.connect(BROKER_URL, timeout=5)
        except Exception as exc:  # any failure to connect means "not available"
            _checked.append(f"{HOW_TO_ENABLE} ({type(exc).__name__}: {exc})")
        else:
            await connection.close()
            _checked.append(None)
    return _checked[0]


async def require_broker() -> None:
    """Skip the test without a broker; in CI, fail it."""
    reason = await broker_unreachable_reason()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"CI requires RabbitMQ: {reason}", pytrace=False)
        pytest.skip(reason)


def new_namespace() -> str:
    """A namespace no other test (or parallel run) uses."""
    return f"test-{secrets.token_hex(4)}"


@asynccontextmanager
async def broker_namespace() -> AsyncIterator[BrokerSettings]:
    """Settings for a fresh namespace; its exchanges and queues are deleted afterwards."""
    await require_broker()
    settings = BrokerSettings(url=BROKER_URL, namespace=new_namespace())
    try:
        yield settings
    finally:
        await delete_namespace(settings.namespace)


async def delete_namespace(namespace: str) -> None:
    """Delete what a topology of `namespace` declares (for the example consumer)."""
    exchanges, queues = Topology(namespace).all_names([STATEMENTS])
    for _ in range(50):  # the broker may be starting again after a restart test
        try:
            connection = await aio_pika.connect(BROKER_URL, timeout=5)
            break
        except Exception:
            await asyncio.sleep(0.2)
    else:
        return
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        for exchange in exchanges:
            await channel.exchange_delete(exchange)


async def queue_messages(name: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take every message now in queue `name` (acknowledged: they are gone afterwards)."""
    taken = []
    async with await aio_pika.connect(BROKER_URL, timeout=5) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            taken.append(message)
    return taken


async def queue_depth(name: str) -> int:
    """How many messages wait in queue `name`."""
    async with await aio_pika.connect(BROKER_URL, timeout=5) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        count: Any = queue.declaration_result.message_count
        return int(count)


def _rabbitmqctl(*args: str) -> None:
    executable = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([executable, *args], check=True, capture_output=True, timeout=120)


def can_restart_broker() -> str | None:
    """None if this test may stop and start the broker's app, else why not."""
    if shutil.which("rabbitmqctl") is None and not os.path.exists("/usr/sbin/rabbitmqctl"):
        return "rabbitmqctl is not installed: the broker-restart test needs a local RabbitMQ"
    if os.geteuid() != 0 and not os.environ.get("TEST_BROKER_RESTART"):
        return "stopping RabbitMQ needs root (or TEST_BROKER_RESTART=1 with rabbitmqctl rights)"
    return None


@asynccontextmanager
async def broker_stopped() -> AsyncIterator[None]:
    """`rabbitmqctl stop_app` for the block, `start_app` after it, whatever happens.

    rabbitmqctl runs in a thread: the relay and consumer under test share this loop, and
    a loop held for the seconds a stop takes would hide how they notice the broker going."""
    await asyncio.to_thread(_rabbitmqctl, "stop_app")
    try:
        yield
    finally:
        await asyncio.to_thread(_rabbitmqctl, "start_app")
        await asyncio.to_thread(_rabbitmqctl, "await_startup")
