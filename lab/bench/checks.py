"""After every run: is the ledger still right? The same checks for every variant."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from db import create_session_factory
from lab.bench.ops import Op, Tally
from models import Transfer
from services import LedgerAuditor


@dataclass(frozen=True, slots=True)
class Check:
    """A run's verdict. `lost_cents` > 0 is money that vanished, < 0 money created."""

    ok: bool
    text: str
    lost_cents: int = 0
    problems: tuple[str, ...] = ()


PASSED = Check(ok=True, text="yes")


async def audit_transfers(engine: AsyncEngine, committed: int) -> Check:
    """Money conserved, no negative balance, every balance equal to its history, and as
    many transfer rows as the variant says it committed. Uses services.LedgerAuditor."""
    report = await LedgerAuditor(create_session_factory(engine)).verify()
    async with engine.connect() as connection:
        rows = await connection.scalar(
            select(func.count())
            .select_from(Transfer)
            .where(Transfer.source_account_id.is_not(None))
        )
    lost = report.deposits - report.withdrawals - report.balances_total
    off_history = sum("history says" in p for p in report.problems)
    negative = sum("negative balance" in p for p in report.problems)
    parts = []
    if lost > 0:
        parts.append(f"LOST {lost} cents")
    elif lost < 0:
        parts.append(f"CREATED {-lost} cents")
    if off_history:
        parts.append(f"{off_history} balances ≠ history")
    if negative:
        parts.append(f"{negative} negative")
    problems = list(report.problems)
    if int(rows or 0) != committed:
        parts.append(f"{committed} committed but {rows} rows")
        problems.append(f"the variant reported {committed} committed transfers; {rows} exist")
    if not parts:
        return PASSED
    return Check(ok=False, text=", ".join(parts), lost_cents=lost, problems=tuple(problems[:5]))


def compare_reads(
    runs: Sequence[tuple[Sequence[Op], Tally]], expected: Callable[[Op], int]
) -> Check:
    """Every read returned what the database holds (compared through a checksum)."""
    for ops, tally in runs:
        if tally.error_count:
            return Check(ok=False, text=f"{tally.error_count} reads failed")
        want = sum(expected(op) for op in ops)
        if tally.value != want:
            return Check(
                ok=False,
                text="WRONG data read",
                problems=(f"checksum {tally.value}, expected {want}",),
            )
    return PASSED
