"""/audit and /jobs/stats: operators only (403 for a user)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from api.deps import State, back_office
from api.schemas import AuditOut, JobStatsOut
from services import BackOffice

router = APIRouter(tags=["back office"])
Office = Annotated[BackOffice, Depends(back_office)]


@router.get("/audit", response_model=AuditOut)
async def audit(service: Office, state: State) -> AuditOut:
    """Every balance against its history, and money in against money out."""
    report = await service.audit(timeout=state.settings.request_timeout)
    return AuditOut(
        ok=report.ok,
        accounts_checked=report.accounts_checked,
        deposits=report.deposits,
        withdrawals=report.withdrawals,
        balances_total=report.balances_total,
        problems=list(report.problems),
    )


@router.get("/jobs/stats", response_model=JobStatsOut)
async def job_stats(service: Office, state: State) -> JobStatsOut:
    """The job queue by status."""
    return JobStatsOut.model_validate(
        await service.job_stats(timeout=state.settings.request_timeout)
    )
