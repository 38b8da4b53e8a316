"""Events from the ledger's outbox into the consumer's statement, effectively once, in order."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from db import BrokerSettings, EngineMonitor
from models import OutboxEvent, OutboxStatus
from services.cloud_events import CONTENT_TYPE, SPECVERSION, decode
from services.outbox import TRANSFER_COMPLETED_EVENT
from services.relay import OutboxRelay
from tests.support.broker import queue_messages
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


async def test_ten_thousand_transfers_reach_the_statement_once_each_in_account_order(
    sessions: Sessions, broker: BrokerSettings
) -> None:
    await declare_statements_queue(broker)
    accounts = await open_accounts(sessions, 20, 1_000_000)
    await transfer_randomly(sessions, accounts, 10_000, random.Random(20))
    async with running(relay(sessions, broker), consumer(sessions, broker)):
        await eventually(lambda: all_applied(sessions), within=180)
    await assert_applied_once_in_order(sessions)
    assert await count(sessions, OutboxEvent.id, OutboxEvent.status != OutboxStatus.SENT) == 0


@pytest.mark.through_pgbouncer
async def test_a_standby_relay_takes_over_from_the_first_unsent_event_and_order_holds(
    sessions: Sessions, broker: BrokerSettings
) -> None:
    await declare_statements_queue(broker)
    accounts = await open_accounts(sessions, 5, 100_000)
    first, second = relay(sessions, broker), relay(sessions, broker)
    stop_first = asyncio.Event()
    first_run = asyncio.create_task(first.run(stop_first))
    await eventually(lambda: _holds(first))
    async with running(second, consumer(sessions, broker)):
        await eventually(lambda: _connected(second))
        assert not second.stats.leader  # one publisher at a time
        # Four writers at once on five accounts: commits interleave, ids are drawn out of
        # commit order across accounts, and the order per account must hold regardless.
        await _concurrently(sessions, accounts, seeds=(1, 2, 3, 4))
        stop_first.set()  # releases the lease: the standby continues where it stopped
        await first_run
        await _concurrently(sessions, accounts, seeds=(5, 6, 7, 8))
        await eventually(lambda: all_applied(sessions))
        assert second.stats.leader
        assert second.stats.published > 0
    await assert_applied_once_in_order(sessions)


async def _concurrently(sessions: Sessions, accounts: list[int], seeds: tuple[int, ...]) -> None:
    await asyncio.gather(
        *(
            transfer_randomly(sessions, accounts, 250, random.Random(seed), chunk=25)
            for seed in seeds
        )
    )


async def _holds(relay_: OutboxRelay) -> bool:
    return relay_.stats.leader


async def _connected(relay_: OutboxRelay) -> bool:
    return relay_.stats.connected


async def test_an_idle_relay_waits_for_a_wake_up_instead_of_claiming_in_a_loop(
    sessions: Sessions, broker: BrokerSettings, engine: AsyncEngine
) -> None:
    runner = relay(sessions, broker, lease_seconds=30.0, poll_interval=30.0)
    async with running(runner):
        await eventually(lambda: _holds(runner))
        with EngineMonitor(engine) as monitor:
            (account,) = await open_accounts(sessions, 1, 100)  # a deposit: one event
            await eventually(lambda: _sent(sessions, 1))
            idle = monitor.statements
            await asyncio.sleep(0.5)  # idle: a relay that polled in a loop would claim here
            # At most one more claim (a wake-up for its own mark's commit on SQLite), not
            # the hundreds a loop makes in half a second.
            assert monitor.statements - idle <= 10
    assert account


@pytest.mark.through_pgbouncer
async def test_an_event_is_a_persistent_cloudevent_with_the_outbox_id(
    sessions: Sessions, broker: BrokerSettings
) -> None:
    await declare_statements_queue(broker)
    (account,) = await open_accounts(sessions, 1, 1_250)
    async with running(relay(sessions, broker)):
        await eventually(lambda: _sent(sessions, 1))
    (message,) = await queue_messages(f"{broker.namespace}.statements")
    async with sessions() as session:
        (row,) = (await session.scalars(select(OutboxEvent))).all()
    envelope = json.loads(message.body)
    assert envelope["specversion"] == SPECVERSION
    assert envelope["id"] == message.message_id == str(row.id)
    assert envelope["type"] == message.type == TRANSFER_COMPLETED_EVENT
    assert envelope["datacontenttype"] == "application/json"
    assert message.content_type == CONTENT_TYPE
    assert message.delivery_mode == 2  # persistent
    assert message.routing_key == TRANSFER_COMPLETED_EVENT
    event = decode(message.body)
    assert event.time == row.created_at
    assert event.data == {
        "transfer_id": 1,
        "source_account_id": None,
        "destination_account_id": account,
        "amount": 1_250,
        "currency": "EUR",
    }
    assert row.sent_at is not None


async def _sent(sessions: Sessions, wanted: int) -> bool:
    return await count(sessions, OutboxEvent.id, OutboxEvent.status == OutboxStatus.SENT) >= wanted
