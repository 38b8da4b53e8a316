"""Use case: prove the ledger is consistent."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from repositories import TransferRepository
from services.results import AuditReport
from services.transactions import Sessions, run_in_transaction


class LedgerAuditor:
    """Checks the invariants that no code path may break.

    Every balance equals its incoming minus outgoing transfers, no balance is negative,
    and the accounts together hold exactly what was deposited minus what was withdrawn.
    It reads in one read-only snapshot, so it can run while transfers are committing.
    """

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def verify(self) -> AuditReport:
        """Run every check; the report lists each problem found."""

        async def work(session: AsyncSession) -> AuditReport:
            repo = TransferRepository(session)
            flows = await repo.flows()
            totals = await repo.totals()
            problems: list[str] = []
            for flow in flows:
                expected = flow.incoming - flow.outgoing
                if flow.balance != expected:
                    problems.append(
                        f"account {flow.account_id}: balance {flow.balance} but history says "
                        f"{expected} ({flow.incoming} in, {flow.outgoing} out)"
                    )
                if flow.balance < 0:
                    problems.append(f"account {flow.account_id}: negative balance {flow.balance}")
            if totals.balances != totals.deposits - totals.withdrawals:
                problems.append(
                    f"accounts hold {totals.balances} in total but deposits minus withdrawals "
                    f"is {totals.deposits - totals.withdrawals}"
                )
            return AuditReport(
                accounts_checked=len(flows),
                deposits=totals.deposits,
                withdrawals=totals.withdrawals,
                balances_total=totals.balances,
                problems=tuple(problems),
            )

        return await run_in_transaction(self._sessions, work, read_only=True)
