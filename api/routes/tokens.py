"""/tokens: revoke the token this request was made with."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from api.deps import Auth, State, access
from services import AccessService

router = APIRouter(tags=["tokens"])


@router.delete("/tokens/current", status_code=204, response_class=Response)
async def revoke_current(
    request: Request, auth: Auth, service: Annotated[AccessService, Depends(access)], state: State
) -> Response:
    """Revoke the presented token: it stops working at once."""
    await service.revoke(request.state.token, timeout=state.settings.request_timeout)
    return Response(status_code=204)
