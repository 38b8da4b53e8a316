"""/dashboard: the caller's page, read by concurrent queries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from api.deps import Auth, State, dashboards
from api.schemas import DashboardOut
from services import DashboardService

router = APIRouter(tags=["dashboard"])


@router.get("/dashboard", response_model=DashboardOut)
async def dashboard(
    auth: Auth, service: Annotated[DashboardService, Depends(dashboards)], state: State
) -> DashboardOut:
    """Accounts, recent transfers, counterparties, totals and notifications of the caller."""
    page = await service.for_user(auth.user.id, timeout=state.settings.request_timeout)
    return DashboardOut.model_validate(page)
