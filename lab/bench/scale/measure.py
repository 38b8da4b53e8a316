"""The operations measured at each size, through the project's services."""

from __future__ import annotations

import statistics
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lab.bench.scale.loader import Ledger
from services import (
    AccountService,
    DashboardService,
    LedgerAuditor,
    TransferService,
    UserService,
)

OPERATIONS: Final = (
    "dashboard",
    "history, first page",
    "history, deep keyset page",
    "point read",
    "transfer",
)
PAGE: Final = 50


@dataclass(frozen=True, slots=True)
class SizeResult:
    """One engine at one size: the median ms of each operation, and the audit."""

    engine: str
    size: int  # transfers loaded (those the measured operations made come on top)
    transfers: int
    median_ms: dict[str, float]
    audit_seconds: float
    audit_rows_per_s: float
    audit_peak_mib: float
    audit_ok: bool


@dataclass(frozen=True, slots=True)
class Payers:
    """Two accounts of another user, for the measured transfers (the loader's accounts
    are the loader's)."""

    source: int
    destination: int


async def open_payers(sessions: async_sessionmaker[AsyncSession]) -> Payers:
    """A second user with two funded accounts."""
    user = await UserService(sessions).register("payer@example.com", "Payer")
    accounts = AccountService(sessions)
    source = await accounts.open(user.id, "EUR")
    destination = await accounts.open(user.id, "EUR")
    await accounts.deposit(source.id, 10**12)
    return Payers(source.id, destination.id)


@dataclass(frozen=True, slots=True)
class Loaded:
    """One ledger, loaded to its size, and what its operations need."""

    size: int
    sessions: async_sessionmaker[AsyncSession]
    ledger: Ledger
    payers: Payers


async def _operations(loaded: Loaded) -> dict[str, Callable[[], Awaitable[object]]]:
    sessions, ledger, payers = loaded.sessions, loaded.ledger, loaded.payers
    accounts = AccountService(sessions)
    account = ledger.account_ids[0]
    deep = await _deep_before(accounts, account)
    return {
        "dashboard": lambda: DashboardService(sessions).for_user(ledger.user_id),
        "history, first page": lambda: accounts.history(account, PAGE),
        "history, deep keyset page": lambda: accounts.history(account, PAGE, before=deep),
        "point read": lambda: accounts.get(account),
        "transfer": lambda: TransferService(sessions).transfer(
            payers.source, payers.destination, 1
        ),
    }


async def measure(engine: str, ledgers: list[Loaded], calls: int) -> list[SizeResult]:
    """Every operation on every ledger, interleaved: each round calls each operation once
    on each ledger, starting with another ledger each round (after three warm-up rounds),
    so that a burst of load elsewhere on the machine falls on every size and operation
    alike rather than on whichever ran then;
    the median ms of each. Then each ledger's audit twice: its rate, then its peak memory
    under tracemalloc (which slows it)."""
    operations = [await _operations(loaded) for loaded in ledgers]
    times: list[dict[str, list[float]]] = [{name: [] for name in OPERATIONS} for _ in ledgers]
    for round_ in range(calls + 3):
        # Each round starts with another ledger: the first call after switching operations
        # would otherwise always fall on the same size.
        order = [(round_ + i) % len(ledgers) for i in range(len(ledgers))]
        for name in OPERATIONS:
            for index in order:
                started = time.perf_counter()
                await operations[index][name]()
                if round_ >= 3:
                    times[index][name].append(time.perf_counter() - started)
    results = []
    for loaded, spent in zip(ledgers, times, strict=True):
        auditor = LedgerAuditor(loaded.sessions)
        started = time.perf_counter()
        report = await auditor.verify()
        seconds = time.perf_counter() - started
        tracemalloc.start()
        try:
            await auditor.verify()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        results.append(
            SizeResult(
                engine=engine,
                size=loaded.size,
                transfers=report.transfers_checked,
                median_ms={name: statistics.median(t) * 1000 for name, t in spent.items()},
                audit_seconds=seconds,
                audit_rows_per_s=report.transfers_checked / seconds,
                audit_peak_mib=peak / 2**20,
                audit_ok=report.ok,
            )
        )
    return results


async def _deep_before(accounts: AccountService, account: int) -> int:
    """An id a tenth of the way into the account's history (from its oldest end), found by
    streaming it: the page before it is about as deep as a page gets."""
    ids: list[int] = []
    async with accounts.history_stream(account, batch_size=5_000) as transfers:
        async for transfer in transfers:
            ids.append(transfer.id)
    return ids[len(ids) // 10]
