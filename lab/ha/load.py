"""A transfer load that keeps going through a failover, and what it saw.

Each client task moves money between a ring of accounts with an idempotency key per
transfer, through `TransferService` or a shared `TransferBatcher`, and retries a failed
call with the same key until it is acknowledged. Every outcome is recorded with its time:
the first commit after a kill, the latency percentiles across it, and every error a
caller saw, typed (`services.errors`) or not. `check` then judges the database by
invariants: every acknowledged transfer exists exactly once, none exists that was not
sent, money is conserved, the audit is clean.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import Account, Transfer
from services import (
    AccountService,
    LedgerAuditor,
    TransferBatcher,
    TransferService,
    UserService,
)
from services.errors import LedgerError

Sessions = async_sessionmaker[AsyncSession]

START_BALANCE: Final = 1_000_000
# A failed call is retried after this pause: a client's backoff, not a synchronisation.
RETRY_PAUSE_S: Final = 0.05
_run_ids = itertools.count(1)


@dataclass(slots=True)
class Observed:
    """What the clients saw: acknowledgements, errors (by type) and latencies."""

    started: float = field(default_factory=time.monotonic)
    acknowledged: dict[str, int] = field(default_factory=dict)  # key -> transfer id
    sent: set[str] = field(default_factory=set)
    typed_errors: Counter[str] = field(default_factory=Counter)
    untyped_errors: Counter[str] = field(default_factory=Counter)
    # (start of the attempt that succeeded, its acknowledgement), monotonic seconds
    commits: list[tuple[float, float]] = field(default_factory=list)
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (end, seconds)

    def untyped(self) -> int:
        """How many errors a caller saw that were not a services.errors type."""
        return sum(self.untyped_errors.values())

    def first_commit_after(self, moment: float) -> float | None:
        """Seconds from `moment` to the first acknowledgement of an attempt that began
        after it (so surely committed after it)."""
        later = [acked for began, acked in self.commits if began > moment]
        return None if not later else min(later) - moment

    def percentile(self, fraction: float, since: float = 0.0) -> float:
        """Latency percentile (seconds) of the calls that ended after `since`, retries
        counted as one call: from the first try to the acknowledgement."""
        values = sorted(seconds for end, seconds in self.latencies if end >= since)
        if not values:
            return 0.0
        return values[min(len(values) - 1, int(fraction * len(values)))]


@dataclass(frozen=True, slots=True)
class Ledger:
    """The accounts a load moves money between."""

    account_ids: tuple[int, ...]
    total: int


async def open_ledger(sessions: Sessions, accounts: int) -> Ledger:
    """`accounts` accounts of one currency, each holding START_BALANCE."""
    run = next(_run_ids)
    users, service = UserService(sessions), AccountService(sessions)
    ids: list[int] = []
    for index in range(accounts):
        user = await users.register(f"ha-{run}-{index}-{time.time_ns()}@example.com", "Load")
        account = await service.open(user.id, "EUR")
        await service.deposit(account.id, START_BALANCE)
        ids.append(account.id)
    return Ledger(tuple(ids), START_BALANCE * accounts)


async def run_clients(
    sessions: Sessions,
    ledger: Ledger,
    *,
    clients: int,
    seconds: float,
    batcher: TransferBatcher | None = None,
    observed: Observed | None = None,
    key_prefix: str = "ha",
) -> Observed:
    """`clients` tasks doing transfers for `seconds`; each retries a failed call with the
    same key until it is acknowledged (or the time is up, when an unacknowledged key is
    simply left: it may or may not have committed, and the check allows both)."""
    seen = observed or Observed()
    service = TransferService(sessions)
    deadline = time.monotonic() + seconds
    ids = ledger.account_ids

    async def client(number: int) -> None:
        for sequence in itertools.count():
            if time.monotonic() >= deadline:
                return
            key = f"{key_prefix}-{number}-{sequence}"
            source = ids[(number + sequence) % len(ids)]
            destination = ids[(number + sequence + 1) % len(ids)]
            began = time.monotonic()
            seen.sent.add(key)
            while time.monotonic() < deadline:
                attempt = time.monotonic()
                try:
                    if batcher is not None:
                        record = await batcher.transfer(source, destination, 1, idempotency_key=key)
                    else:
                        record = await service.transfer(source, destination, 1, idempotency_key=key)
                except LedgerError as exc:
                    seen.typed_errors[type(exc).__name__] += 1
                except Exception as exc:  # what this harness exists to count
                    seen.untyped_errors[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
                else:
                    now = time.monotonic()
                    seen.acknowledged[key] = record.id
                    seen.commits.append((attempt, now))
                    seen.latencies.append((now, now - began))
                    break
                await asyncio.sleep(RETRY_PAUSE_S)

    await asyncio.gather(*(client(n) for n in range(clients)))
    return seen


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the database holds after a load, judged against what the clients saw."""

    lost: list[str]  # acknowledged keys with no transfer
    doubled: list[str]  # keys stored more than once
    unsent: list[str]  # stored keys no client sent
    wrong_id: list[str]  # acknowledged with an id the stored row does not have
    total: int
    expected_total: int
    audit_ok: bool

    @property
    def ok(self) -> bool:
        """No loss, no double, nothing invented, money conserved, audit clean."""
        return (
            not (self.lost or self.doubled or self.unsent or self.wrong_id)
            and self.total == self.expected_total
            and self.audit_ok
        )


async def check(
    sessions: Sessions, ledger: Ledger, observed: Observed, key_prefix: str = "ha"
) -> Verdict:
    """Judge the database (read on the primary) by the load's invariants."""
    async with sessions() as session:
        rows = (
            await session.execute(
                select(Transfer.idempotency_key, Transfer.id).where(
                    Transfer.idempotency_key.like(f"{key_prefix}-%")
                )
            )
        ).all()
        total = await session.scalar(
            select(func.coalesce(func.sum(Account.balance), 0)).where(
                Account.id.in_(ledger.account_ids)
            )
        )
    stored: dict[str, list[int]] = {}
    for key, transfer_id in rows:
        stored.setdefault(str(key), []).append(int(transfer_id))
    report = await LedgerAuditor(sessions).verify()
    return Verdict(
        lost=sorted(k for k in observed.acknowledged if k not in stored),
        doubled=sorted(k for k, found in stored.items() if len(found) > 1),
        unsent=sorted(k for k in stored if k not in observed.sent),
        wrong_id=sorted(
            k for k, i in observed.acknowledged.items() if k in stored and stored[k] != [i]
        ),
        total=int(total or 0),
        expected_total=ledger.total,
        audit_ok=report.ok,
    )


def describe(observed: Observed, moment: float | None = None) -> Sequence[str]:
    """Lines for a report: counts, errors, unavailability."""
    lines = [
        f"acknowledged {len(observed.acknowledged)} of {len(observed.sent)} keys sent",
        f"typed errors: {dict(observed.typed_errors)}",
        f"untyped errors: {dict(observed.untyped_errors)}",
    ]
    if moment is not None:
        gap = observed.first_commit_after(moment)
        lines.append(
            "no commit after the fault" if gap is None else f"first commit {gap:.2f} s after it"
        )
    return lines
