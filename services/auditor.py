"""Use case: prove the ledger is consistent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from repositories import KeptTotals, TransferRepository
from services import validation
from services.results import AuditReport
from services.transactions import Sessions, run_in_transaction

AUDIT_RANGE: Final = 50_000
"""Transfer ids the audit sums per query: each a range scan of the primary key."""
MAX_AUDIT_RANGE: Final = 10_000_000
ACCOUNTS_BATCH: Final = 1_000

Progress = Callable[[int, int], object]
"""Called as the audit reads the history: (transfer id read up to, last transfer id)."""


@dataclass(slots=True)
class _Flow:
    """What an account's history adds up to."""

    received: int = 0
    sent: int = 0
    movements: int = 0


class LedgerAuditor:
    """Checks the invariants that no code path may break.

    Every balance equals its incoming minus outgoing transfers, no balance is negative,
    every account's kept totals (received, sent, movements) equal its history's, and the
    accounts together hold exactly what was deposited minus what was withdrawn. It reads
    in one read-only snapshot, so it can run while transfers are committing; the history
    range by range (each summed by the database) and the accounts from a server-side
    cursor, so its memory grows with the number of accounts, never with the history.
    """

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def verify(
        self, *, progress: Progress | None = None, range_size: int = AUDIT_RANGE
    ) -> AuditReport:
        """Run every check; the report lists each problem found. `progress`, if given, is
        called after each range of `range_size` transfer ids (and again if the snapshot
        is read again after a transient failure)."""
        step = validation.bounded(range_size, "range_size", 1, MAX_AUDIT_RANGE)

        async def work(session: AsyncSession) -> AuditReport:
            repo = TransferRepository(session)
            last = await repo.last_id()
            flows: dict[int, _Flow] = {}
            deposits = withdrawals = transfers = 0
            after = 0
            while after < last:
                up_to = min(after + step, last)
                for leg in await repo.leg_sums(after, up_to):
                    flow = flows.setdefault(leg.account_id, _Flow())
                    flow.movements += leg.legs
                    if leg.incoming:
                        flow.received += leg.amount
                        deposits += leg.amount if leg.external else 0
                        transfers += leg.legs  # every transfer but a withdrawal has one
                    else:
                        flow.sent += leg.amount
                        withdrawals += leg.amount if leg.external else 0
                        transfers += leg.legs if leg.external else 0
                after = up_to
                if progress is not None:
                    progress(after, last)
            problems: list[str] = []
            accounts = balances = 0
            async for kept in repo.stream_kept_totals(batch_size=ACCOUNTS_BATCH):
                accounts += 1
                balances += kept.balance
                problems += _account_problems(kept, flows.pop(kept.account_id, _Flow()))
            # Legs of an account that is not there: the foreign keys forbid it, so say so.
            problems += [f"account {i}: has transfers but no row" for i in sorted(flows)]
            if balances != deposits - withdrawals:
                problems.append(
                    f"accounts hold {balances} in total but deposits minus withdrawals "
                    f"is {deposits - withdrawals}"
                )
            return AuditReport(
                accounts_checked=accounts,
                deposits=deposits,
                withdrawals=withdrawals,
                balances_total=balances,
                problems=tuple(problems),
                transfers_checked=transfers,
            )

        return await run_in_transaction(self._sessions, work, read_only=True)


def _account_problems(kept: KeptTotals, flow: _Flow) -> list[str]:
    problems = []
    expected = flow.received - flow.sent
    if kept.balance != expected:
        problems.append(
            f"account {kept.account_id}: balance {kept.balance} but history says "
            f"{expected} ({flow.received} in, {flow.sent} out)"
        )
    if kept.balance < 0:
        problems.append(f"account {kept.account_id}: negative balance {kept.balance}")
    if (kept.received, kept.sent, kept.movements) != (flow.received, flow.sent, flow.movements):
        problems.append(
            f"account {kept.account_id}: keeps {kept.received} received, {kept.sent} sent, "
            f"{kept.movements} movements; its transfers add up to {flow.received}, "
            f"{flow.sent}, {flow.movements}"
        )
    return problems
