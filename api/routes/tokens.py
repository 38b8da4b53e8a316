"""/tokens: revoke the token this request was made with."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.ledger import CallerLedger

router = APIRouter(tags=["tokens"])


@router.delete("/tokens/current", status_code=204, response_class=Response)
async def revoke_current(ledger: CallerLedger) -> Response:
    """Revoke the presented token: it stops working at once."""
    assert ledger.token is not None
    await ledger.access().revoke(ledger.token)
    return Response(status_code=204)
