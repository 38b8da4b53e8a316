"""/dashboard: the caller's page, read by concurrent queries."""

from __future__ import annotations

from fastapi import APIRouter

from api.ledger import CallerLedger
from api.schemas import DashboardOut

router = APIRouter(tags=["dashboard"])


@router.get("/dashboard", response_model=DashboardOut)
async def dashboard(ledger: CallerLedger) -> DashboardOut:
    """Accounts, recent transfers, counterparties, totals and notifications of the caller."""
    page = await ledger.dashboards().for_user(ledger.user.id)
    return DashboardOut.model_validate(page)
