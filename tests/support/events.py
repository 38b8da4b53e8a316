"""Helpers of the event tests: transfers to publish, relays and consumers running as
tasks, and the one verdict on what the consumer's effect must be."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import BrokerSettings
from db.broker import Topology
from models import Account, InboxMessage, OutboxEvent, StatementLine
from services import TransferRequest, TransferService
from services.consumer import EventConsumer
from services.outbox import TRANSFER_COMPLETED_EVENT
from services.relay import OutboxRelay
from services.statements import STATEMENTS, statement_handler
from tests.support.broker import BROKER_URL
from tests.support.ledger import open_account

Sessions = async_sessionmaker[AsyncSession]


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 60.0) -> None:
    """Wait until `check()` holds (polling, as an observer does), or fail after `within` s."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {within:g}s")
        await asyncio.sleep(0.05)


async def declare_statements_queue(broker: BrokerSettings) -> None:
    """Declare the example consumer's queue, so that events published before it first
    connects wait there instead of going to the unrouted queue."""
    async with await aio_pika.connect(BROKER_URL, timeout=5) as connection:
        channel = await connection.channel()
        await Topology(broker.namespace).declare_consumer(
            channel, STATEMENTS, [TRANSFER_COMPLETED_EVENT]
        )


async def open_accounts(sessions: Sessions, count: int, balance: int) -> list[int]:
    """`count` accounts in EUR, each given `balance` by a deposit."""
    return [(await open_account(sessions, balance)).id for _ in range(count)]


async def transfer_randomly(
    sessions: Sessions, accounts: Sequence[int], count: int, rng: random.Random, chunk: int = 1000
) -> None:
    """`count` transfers of 1 to 3 minor units between random accounts, `chunk` per
    transaction through the write path every caller uses (transfer_many)."""
    service = TransferService(sessions)
    for start in range(0, count, chunk):
        requests = []
        for _ in range(min(chunk, count - start)):
            source, destination = rng.sample(list(accounts), 2)
            requests.append(TransferRequest.of(source, destination, rng.randint(1, 3)))
        outcomes = await service.transfer_many(requests)
        failed = [o for o in outcomes if isinstance(o, Exception)]
        assert not failed, failed[:3]


@asynccontextmanager
async def running(*runners: OutboxRelay | EventConsumer) -> AsyncIterator[list[asyncio.Task[Any]]]:
    """Run relays and consumers as tasks for the block; stop them and re-raise what failed."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(runner.run(stop)) for runner in runners]
    try:
        yield tasks
    finally:
        stop.set()
        await asyncio.gather(*tasks)


def relay(sessions: Sessions, broker: BrokerSettings, **options: Any) -> OutboxRelay:
    """A relay with a short lease, so that a takeover in a test is quick."""
    options.setdefault("lease_seconds", 1.0)
    return OutboxRelay(sessions, broker, **options)


def consumer(sessions: Sessions, broker: BrokerSettings, **options: Any) -> EventConsumer:
    """The example consumer (statements)."""
    return EventConsumer(sessions, broker, STATEMENTS, statement_handler(), **options)


async def count(sessions: Sessions, column: Any, *where: Any) -> int:
    """SELECT count(column) … WHERE …."""
    async with sessions() as session:
        return int(await session.scalar(select(func.count(column)).where(*where)) or 0)


async def all_applied(sessions: Sessions) -> bool:
    """Whether the consumer's inbox holds as many messages as the outbox has events."""
    events = await count(sessions, OutboxEvent.id)
    inbox = await count(sessions, InboxMessage.message_id, InboxMessage.consumer == STATEMENTS)
    return events > 0 and inbox >= events


async def assert_applied_once_in_order(sessions: Sessions) -> None:
    """The verdict: every outbox event applied exactly once (one inbox row, one statement
    line per account it touched, no line for anything else), each account's lines in its
    events' id order (= commit order), and each account's statement balance equal to the
    ledger's balance change since the events began."""
    async with sessions() as session:
        events = {
            row.id: row.data
            for row in await session.execute(select(OutboxEvent.id, OutboxEvent.data))
        }
        inbox = set(
            (
                await session.scalars(
                    select(InboxMessage.message_id).where(InboxMessage.consumer == STATEMENTS)
                )
            ).all()
        )
        lines = (
            await session.execute(
                select(
                    StatementLine.account_id,
                    StatementLine.event_id,
                    StatementLine.amount,
                    StatementLine.balance,
                ).order_by(StatementLine.id)
            )
        ).all()
        balances = dict((await session.execute(select(Account.id, Account.balance))).all())
    assert inbox == {str(i) for i in events}, "the inbox differs from the outbox"
    expected: dict[tuple[int, str], int] = {}
    for event_id, data in events.items():
        if data["source_account_id"] is not None:
            expected[(data["source_account_id"], str(event_id))] = -data["amount"]
        if data["destination_account_id"] is not None:
            expected[(data["destination_account_id"], str(event_id))] = data["amount"]
    seen = [(line.account_id, line.event_id) for line in lines]
    assert len(seen) == len(set(seen)), "an event was applied twice"
    assert {(a, e): amount for a, e, amount, _ in lines} == expected
    per_account: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for account, event_id, _, balance in lines:
        per_account[account].append((int(event_id), balance))
    for account, applied in per_account.items():
        ids = [event_id for event_id, _ in applied]
        assert ids == sorted(ids), f"account {account}'s events were applied out of order"
        assert applied[-1][1] == balances[account], f"account {account}'s statement balance"
