"""The demo job: a concurrent workload against the embedded database, then an audit."""

from __future__ import annotations

import asyncio
import random
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cli.context import AppContext
from db import EngineMonitor, pool_status
from services import (
    AccountService,
    JobQueue,
    LedgerAuditor,
    TransferBatcher,
    TransferRecord,
    TransferService,
    UserService,
)
from services.currencies import format_amount
from services.errors import IdempotencyConflict, InsufficientFunds, LedgerError

T = TypeVar("T")

CURRENCY = "EUR"
OPENING_BALANCE = 100_000  # 1,000.00 EUR in cents


@dataclass(frozen=True, slots=True)
class _Op:
    source: int
    destination: int
    amount: int
    key: str
    kind: str  # "new", "replay" (same request again) or "conflict" (same key, other amount)


def _plan(rng: random.Random, accounts: list[int], count: int, tag: str) -> list[_Op]:
    ops: list[_Op] = []
    for n in range(count):
        if ops and rng.random() < 0.05:
            earlier = rng.choice(ops)
            ops.append(
                _Op(earlier.source, earlier.destination, earlier.amount, earlier.key, "replay")
            )
            continue
        if ops and rng.random() < 0.02:
            earlier = rng.choice(ops)
            ops.append(
                _Op(
                    earlier.source, earlier.destination, earlier.amount + 1, earlier.key, "conflict"
                )
            )
            continue
        source, destination = rng.sample(accounts, 2)
        # Up to 60% of an opening balance: enough that some transfers hit empty accounts.
        amount = rng.randint(1, OPENING_BALANCE * 6 // 10)
        ops.append(_Op(source, destination, amount, f"demo-{tag}-{n}", "new"))
    return ops


async def _gather_or_cancel(*coroutines: Coroutine[Any, Any, T]) -> list[T]:
    """Like asyncio.gather, but when one fails the others are cancelled and awaited first.

    Plain gather lets the siblings run on, holding pooled connections, after the error
    has left the command; the engine is then disposed under them and their connections
    (on SQLite, with the write lock) are left to the garbage collector.
    """
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def run_demo(
    app: AppContext,
    *,
    transfers: int,
    concurrency: int,
    users: int,
    seed: int | None,
    batched: bool = True,
) -> bool:
    """Set up users and accounts, run `transfers` requests from `concurrency` tasks, audit."""
    if transfers < 1 or concurrency < 1 or users < 2:
        raise LedgerError("demo needs --transfers >= 1, --concurrency >= 1 and --users >= 2")
    rng = random.Random(seed)
    tag = secrets.token_hex(4)
    settings = app.settings
    print(
        f"demo on {settings.display_url}: pool_size={settings.pool_size} "
        f"max_overflow={settings.max_overflow} pool_timeout={settings.pool_timeout}s"
    )
    account_ids = await _set_up(app, users, tag)
    ops = _plan(rng, account_ids, transfers, tag)
    load = await _run_load(app, ops, concurrency, batched)
    _report_load(app, load, len(ops), concurrency)
    conserved, audited = await _verify(app, account_ids)
    jobs = await JobQueue(app.sessions).stats()
    print(
        f"outbox: {jobs.queued} transfer.completed jobs queued in the transfers' own "
        "transactions; `ledgerctl worker --drain` delivers their notifications"
    )
    return audited and conserved and load.replay_mismatches == 0


async def _set_up(app: AppContext, users: int, tag: str) -> list[int]:
    """`users` users, each with an account holding OPENING_BALANCE; their account ids."""
    user_service, account_service = UserService(app.sessions), AccountService(app.sessions)
    setup_started = time.perf_counter()
    people = await _gather_or_cancel(
        *(user_service.register(f"demo-{tag}-{i}@example.com", f"Demo {i}") for i in range(users))
    )
    accounts = await _gather_or_cancel(*(account_service.open(p.id, CURRENCY) for p in people))
    await _gather_or_cancel(
        *(account_service.deposit(a.id, OPENING_BALANCE, description="opening") for a in accounts)
    )
    print(
        f"set up {users} users and accounts with {OPENING_BALANCE} cents each "
        f"in {time.perf_counter() - setup_started:.2f}s"
    )
    return [a.id for a in accounts]


@dataclass(slots=True)
class _Load:
    """What the concurrent clients saw, and what the engine did meanwhile."""

    monitor: EngineMonitor
    batcher: TransferBatcher | None
    elapsed: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    replay_mismatches: int = 0


async def _run_load(app: AppContext, ops: list[_Op], concurrency: int, batched: bool) -> _Load:
    """Run `ops` from `concurrency` tasks, through the batcher unless `batched` is off."""
    queue: asyncio.Queue[_Op] = asyncio.Queue()
    for op in ops:
        queue.put_nowait(op)
    # Group commit by default: concurrent transfers share one transaction. --unbatched
    # sends each through TransferService in its own transaction, to compare.
    batcher = TransferBatcher(app.sessions) if batched else None
    transfer = batcher.transfer if batcher is not None else TransferService(app.sessions).transfer
    load = _Load(monitor=EngineMonitor(app.engine), batcher=batcher)
    by_key: dict[str, int] = {}

    async def client() -> None:
        while not queue.empty():
            op = queue.get_nowait()
            started = time.perf_counter()
            try:
                record: TransferRecord = await transfer(
                    op.source, op.destination, op.amount, idempotency_key=op.key
                )
            except InsufficientFunds:
                load.outcomes["insufficient funds"] += 1
            except IdempotencyConflict:
                load.outcomes["idempotency conflict"] += 1
            else:
                if op.key in by_key and by_key[op.key] != record.id:
                    load.replay_mismatches += 1
                by_key.setdefault(op.key, record.id)
                load.outcomes["replayed" if op.kind == "replay" else "committed"] += 1
            finally:
                load.latencies.append(time.perf_counter() - started)

    with load.monitor:
        started = time.perf_counter()
        if batcher is not None:
            async with batcher:
                await _gather_or_cancel(*(client() for _ in range(concurrency)))
        else:
            await _gather_or_cancel(*(client() for _ in range(concurrency)))
        load.elapsed = time.perf_counter() - started
    return load


def _report_load(app: AppContext, load: _Load, requests: int, concurrency: int) -> None:
    """Throughput, latency, group commit, outcomes, and what the pool and driver did."""
    latencies, monitor, batcher = load.latencies, load.monitor, load.batcher
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    print(
        f"{requests} transfer requests from {concurrency} concurrent tasks in "
        f"{load.elapsed:.2f}s: {requests / load.elapsed:.0f} requests/s, latency p50 "
        f"{quantiles[49] * 1000:.1f} ms, p99 {quantiles[98] * 1000:.1f} ms"
    )
    if batcher is not None:
        print(
            f"group commit: {batcher.batches} transactions, "
            f"{requests / max(batcher.batches, 1):.1f} requests per transaction on average, "
            f"largest {batcher.largest_batch}"
        )
    else:
        print("group commit: off (one transaction per request)")
    outcomes = load.outcomes
    print("outcomes: " + ", ".join(f"{count} {name}" for name, count in sorted(outcomes.items())))
    if load.replay_mismatches:
        print(f"replays that got a different transfer: {load.replay_mismatches}")
    settings = app.settings
    print(
        f"pool under load: peak {monitor.peak_checked_out} connections checked out "
        f"(pool_size {settings.pool_size} + max_overflow {settings.max_overflow}); "
        f"{monitor.checkouts} checkouts; after: {pool_status(app.engine)}"
    )
    print(
        f"driver work: {monitor.statements} statements and {monitor.commits} commits, "
        f"{monitor.statements / max(requests, 1):.1f} statements per request"
    )


async def _verify(app: AppContext, account_ids: list[int]) -> tuple[bool, bool]:
    """Print the balances; (money conserved, audit ok)."""
    account_service = AccountService(app.sessions)
    balances = {a: await account_service.balance(a) for a in account_ids}
    print("balances:")
    for account_id, balance in balances.items():
        print(f"  account {account_id:>5}: {format_amount(balance, CURRENCY):>13}")
    report = await LedgerAuditor(app.sessions).verify()
    expected_total = OPENING_BALANCE * len(account_ids)
    demo_total = sum(balances.values())
    conserved = demo_total == expected_total
    print(
        f"money conserved: {'yes' if conserved else 'NO'} "
        f"({format_amount(demo_total, CURRENCY)} of {format_amount(expected_total, CURRENCY)}); "
        f"audit {'ok' if report.ok else 'FAILED'}: {report.accounts_checked} accounts, "
        f"balances total {report.balances_total} minor units (all currencies)"
    )
    for problem in report.problems:
        print(f"  - {problem}")
    return conserved, report.ok
