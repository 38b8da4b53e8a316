"""/audit and /jobs/stats: operators only (403 for a user)."""

from __future__ import annotations

from fastapi import APIRouter

from api.ledger import CallerLedger
from api.schemas import AuditOut, JobStatsOut

router = APIRouter(tags=["back office"])


@router.get("/audit", response_model=AuditOut)
async def audit(ledger: CallerLedger) -> AuditOut:
    """Every balance against its history, and money in against money out."""
    report = await ledger.back_office().audit()
    return AuditOut(
        ok=report.ok,
        accounts_checked=report.accounts_checked,
        transfers_checked=report.transfers_checked,
        deposits=report.deposits,
        withdrawals=report.withdrawals,
        balances_total=report.balances_total,
        problems=list(report.problems),
    )


@router.get("/jobs/stats", response_model=JobStatsOut)
async def job_stats(ledger: CallerLedger) -> JobStatsOut:
    """The job queue by status."""
    return JobStatsOut.model_validate(await ledger.back_office().job_stats())
