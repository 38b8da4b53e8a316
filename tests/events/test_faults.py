"""Faults: poison messages, real processes killed at the worst moment, the broker restarted,
the broker down at start, and outbox rows that cannot be encoded."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import aio_pika
import pytest
from sqlalchemy import select, text

from db import BrokerSettings
from db.broker import DEAD_REASON_HEADER, Topology
from models import InboxMessage, OutboxEvent, OutboxStatus, StatementLine
from services import EventOutbox
from services.cloud_events import CONTENT_TYPE
from services.outbox import TRANSFER_COMPLETED_EVENT
from services.statements import STATEMENTS
from tests.support.broker import (
    BROKER_URL,
    broker_stopped,
    can_restart_broker,
    queue_depth,
    queue_messages,
)
from tests.support.events import (
    Sessions,
    all_applied,
    assert_applied_once_in_order,
    consumer,
    count,
    declare_statements_queue,
    eventually,
    open_accounts,
    relay,
    running,
    transfer_randomly,
)
from tests.support.paths import PROJECT_ROOT


async def _publish_raw(broker: BrokerSettings, bodies: list[bytes], key: str) -> None:
    async with await aio_pika.connect(BROKER_URL) as connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(Topology(broker.namespace).exchange)
        for body in bodies:
            await exchange.publish(
                aio_pika.Message(body, content_type=CONTENT_TYPE), routing_key=key
            )


def _event(event_id: str, **data: object) -> bytes:
    fields = {
        "transfer_id": 7,
        "source_account_id": None,
        "destination_account_id": 3,
        "amount": 100,
        "currency": "EUR",
    } | data
    return json.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "urn:test",
            "type": TRANSFER_COMPLETED_EVENT,
            "time": "2026-12-07T08:00:00Z",
            "datacontenttype": "application/json",
            "data": fields,
        }
    ).encode()


async def test_poison_messages_are_dead_lettered_with_the_reason_and_the_rest_flow(
    sessions: Sessions, broker: BrokerSettings
) -> None:
    await declare_statements_queue(broker)
    poison = {
        b"not json at all": "malformed: not JSON",
        b'["a", "list"]': "malformed: a JSON list",
        _event("p1").replace(b'"1.0"', b'"0.3"'): "malformed: specversion",
        _event("p2", amount=-5): "wrong schema: amount must be positive",
        _event("p3", surprise=1): "wrong schema: data has unknown fields",
    }
    await _publish_raw(broker, [_event("good-1")], TRANSFER_COMPLETED_EVENT)
    await _publish_raw(broker, list(poison), TRANSFER_COMPLETED_EVENT)
    unknown = _event("u1").replace(TRANSFER_COMPLETED_EVENT.encode(), b"ledger.account.closed")
    await _publish_raw(broker, [unknown], TRANSFER_COMPLETED_EVENT)
    await _publish_raw(broker, [_event("good-2", transfer_id=8)], TRANSFER_COMPLETED_EVENT)
    runner = consumer(sessions, broker)
    async with running(runner):
        await eventually(lambda: _inbox_holds(sessions, 2))
        await eventually(lambda: asyncio.sleep(0, runner.stats.dead_lettered == 6))
    dead = await queue_messages(Topology(broker.namespace).dead_queue(STATEMENTS))
    reasons = {m.body: str((m.headers or {})[DEAD_REASON_HEADER]) for m in dead}
    for body, reason in poison.items():
        assert reasons[body].startswith(reason.split(":")[0]), reasons[body]
        assert reason.split(": ")[1] in reasons[body]
    assert "unknown event type 'ledger.account.closed'" in reasons[unknown]
    assert await count(sessions, StatementLine.id) == 2
    assert await queue_depth(Topology(broker.namespace).queue(STATEMENTS)) == 0


async def _inbox_holds(sessions: Sessions, wanted: int) -> bool:
    return await count(sessions, InboxMessage.message_id) >= wanted


async def test_a_message_delivered_twice_changes_the_statement_once(
    sessions: Sessions, broker: BrokerSettings
) -> None:
    await declare_statements_queue(broker)
    await _publish_raw(broker, [_event("42"), _event("42"), _event("42")], TRANSFER_COMPLETED_EVENT)
    runner = consumer(sessions, broker)
    async with running(runner):
        await eventually(
            lambda: asyncio.sleep(0, runner.stats.applied + runner.stats.duplicates == 3)
        )
    assert runner.stats.applied == 1
    async with sessions() as session:
        lines = (
            await session.execute(select(StatementLine.account_id, StatementLine.amount))
        ).all()
    assert lines == [(3, 100)]


async def test_an_unencodable_outbox_row_is_failed_with_its_reason_and_the_rest_are_sent(
    sessions: Sessions, broker: BrokerSettings
) -> None:
    await declare_statements_queue(broker)
    (account,) = await open_accounts(sessions, 1, 500)
    async with sessions.begin() as session:
        await EventOutbox.add(session, "ledger.note.added", {"text": "fine"})
        # What only a bug or a hand-edited row can hold: data that is not a JSON object.
        await session.execute(
            text(
                "INSERT INTO outbox_events (type, data, status, created_at)"
                " VALUES ('ledger.note.added', '[1, 2]', 'pending', CURRENT_TIMESTAMP)"
            )
        )
    await open_accounts(sessions, 1, 700)
    async with running(relay(sessions, broker)):
        await eventually(lambda: _settled(sessions))
    state = await EventOutbox(sessions).state()
    assert (state.pending, state.failed) == (0, 1)
    (failed,) = state.failed_events
    assert failed.error == "cannot encode: data is a JSON list, not an object"
    sent = await count(sessions, OutboxEvent.id, OutboxEvent.status == OutboxStatus.SENT)
    assert sent == 3
    assert account


async def _settled(sessions: Sessions) -> bool:
    return await count(sessions, OutboxEvent.id, OutboxEvent.status == OutboxStatus.PENDING) == 0


async def test_a_relay_started_while_the_broker_is_unreachable_says_so_once_and_retries(
    sessions: Sessions, broker: BrokerSettings, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = BrokerSettings(url="amqp://guest:secret@127.0.0.1:1/", namespace=broker.namespace)
    runner = relay(sessions, nowhere)
    with caplog.at_level(logging.WARNING, logger="db.broker"):
        async with running(runner):
            await eventually(lambda: _attempts(caplog))
            await asyncio.sleep(1.0)  # room for several retries (the backoff starts at 0.1 s)
    lines = [r.getMessage() for r in caplog.records if r.name == "db.broker"]
    assert len(lines) == 1, lines
    assert "broker unreachable at amqp://guest:***@127.0.0.1:1/" in lines[0]
    assert "secret" not in lines[0]
    assert not runner.stats.connected


async def test_a_broker_that_refuses_the_topology_is_retried_with_backoff_not_in_a_loop(
    sessions: Sessions, broker: BrokerSettings, caplog: pytest.LogCaptureFixture
) -> None:
    async with await aio_pika.connect(BROKER_URL) as connection:
        channel = await connection.channel()
        # The events exchange already exists as another type: every declaration is refused.
        await channel.declare_exchange(
            Topology(broker.namespace).exchange, aio_pika.ExchangeType.FANOUT, durable=True
        )
    runner = relay(sessions, broker)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="services.relay"):
        async with running(runner):
            await eventually(lambda: asyncio.sleep(0, runner.stats.reconnects >= 4))
    # Backoff between sessions: at least 0.05 + 0.1 + 0.2 s before the fourth reconnect.
    assert time.monotonic() - started >= 0.35
    lost = [r.getMessage() for r in caplog.records if "connection lost" in r.getMessage()]
    assert len(lost) == 1, lost
    assert "PRECONDITION_FAILED" in lost[0]


async def _attempts(caplog: pytest.LogCaptureFixture) -> bool:
    return any(r.name == "db.broker" for r in caplog.records)


# Real processes, killed at the worst moment, on both engines.


@contextmanager
def child(mode: str, url: str, namespace: str, *, pause: bool) -> Iterator[subprocess.Popen[str]]:
    """`tests.support.events_child` in a process of its own; always stopped by its pid."""
    args = [sys.executable, "-m", "tests.support.events_child", mode, url, namespace]
    process = subprocess.Popen(
        [*args, *(["--pause"] if pause else [])],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TEST_BROKER_URL": BROKER_URL},
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        assert process.stdout is not None
        process.stdout.close()


async def _line(process: subprocess.Popen[str], word: str) -> list[str]:
    """The next stdout line of `process` that starts with `word`, split."""
    assert process.stdout is not None
    while True:
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), timeout=120)
        assert line, f"the child exited before printing {word!r}"
        if line.startswith(word):
            return line.split()[1:]


async def test_a_relay_killed_between_confirm_and_mark_publishes_again_and_the_effect_is_once(
    sessions: Sessions, broker: BrokerSettings, database_url: str
) -> None:
    await declare_statements_queue(broker)
    accounts = await open_accounts(sessions, 4, 10_000)
    await transfer_randomly(sessions, accounts, 200, random.Random(3))
    with child("relay", database_url, broker.namespace, pause=True) as process:
        confirmed = [int(i) for i in await _line(process, "confirmed")]
        assert confirmed
        # The broker has them; the outbox does not know yet. Now the worst moment:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    unmarked = await count(
        sessions,
        OutboxEvent.id,
        OutboxEvent.id.in_(confirmed),
        OutboxEvent.status == OutboxStatus.PENDING,
    )
    assert unmarked == len(confirmed)
    runner = consumer(sessions, broker)
    async with running(relay(sessions, broker), runner):  # waits out the dead one's lease
        await eventually(lambda: all_applied(sessions))
        await eventually(lambda: asyncio.sleep(0, runner.stats.duplicates >= len(confirmed)))
    await assert_applied_once_in_order(sessions)


async def test_a_consumer_killed_after_its_commit_and_before_its_ack_gets_them_again_once(
    sessions: Sessions, broker: BrokerSettings, database_url: str
) -> None:
    await declare_statements_queue(broker)
    accounts = await open_accounts(sessions, 4, 10_000)
    await transfer_randomly(sessions, accounts, 200, random.Random(4))
    async with running(relay(sessions, broker)):
        await eventually(lambda: _settled(sessions))
    with child("consume", database_url, broker.namespace, pause=True) as process:
        committed = await _line(process, "committed")
        assert committed
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    async with sessions() as session:
        inbox = set((await session.scalars(select(InboxMessage.message_id))).all())
    assert set(committed) <= inbox  # the effect committed; the broker never heard
    runner = consumer(sessions, broker)
    async with running(runner):
        await eventually(lambda: all_applied(sessions))
    assert runner.stats.duplicates >= len(committed)  # redelivered, and skipped
    await assert_applied_once_in_order(sessions)


async def test_the_broker_restarted_mid_stream_loses_nothing(
    sessions: Sessions, broker: BrokerSettings
) -> None:
    reason = can_restart_broker()
    if reason is not None:
        pytest.skip(reason)
    await declare_statements_queue(broker)
    accounts = await open_accounts(sessions, 6, 100_000)
    publisher, reader = relay(sessions, broker), consumer(sessions, broker)
    async with running(publisher, reader):
        await transfer_randomly(sessions, accounts, 300, random.Random(5), chunk=50)
        async with broker_stopped():
            await eventually(lambda: asyncio.sleep(0, not publisher.stats.connected))
            # Written while the broker is down: they wait in the outbox.
            await transfer_randomly(sessions, accounts, 300, random.Random(6), chunk=50)
        await transfer_randomly(sessions, accounts, 300, random.Random(7), chunk=50)
        await eventually(lambda: all_applied(sessions), within=120)
    assert publisher.stats.reconnects >= 1
    assert reader.stats.reconnects >= 1
    await assert_applied_once_in_order(sessions)
