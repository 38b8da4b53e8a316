"""/transfers: move money (group-committed when the batcher runs; api/ledger.py chooses)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import IdempotencyKey
from api.ledger import CallerLedger
from api.routes.money import MONEY_RESPONSES, answer
from api.schemas import TransferIn, TransferOut

router = APIRouter(tags=["transfers"])


@router.post(
    "/transfers",
    status_code=201,
    response_model=TransferOut,
    responses=MONEY_RESPONSES,
)
async def transfer(
    body: TransferIn, key: IdempotencyKey, response: Response, ledger: CallerLedger
) -> TransferOut:
    """Move money out of one of the caller's accounts into any account of its currency."""
    record = await ledger.transfers().transfer(
        body.source_account_id,
        body.destination_account_id,
        body.amount,
        idempotency_key=key,
        description=body.description,
    )
    return answer(record, response)
