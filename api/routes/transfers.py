"""/transfers: move money; group commit (the batcher) is the write path when it is on."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from api.deps import Auth, IdempotencyKey, State, transfers
from api.routes.money import MONEY_RESPONSES, answer
from api.schemas import TransferIn, TransferOut
from services import TransferService

router = APIRouter(tags=["transfers"])


@router.post(
    "/transfers",
    status_code=201,
    response_model=TransferOut,
    responses=MONEY_RESPONSES,
)
async def transfer(
    body: TransferIn,
    key: IdempotencyKey,
    response: Response,
    auth: Auth,
    service: Annotated[TransferService, Depends(transfers)],
    state: State,
) -> TransferOut:
    """Move money out of one of the caller's accounts into any account of its currency."""
    timeout = state.settings.request_timeout
    if state.batcher is not None:
        record = await state.batcher.transfer(
            body.source_account_id,
            body.destination_account_id,
            body.amount,
            idempotency_key=key,
            description=body.description,
            timeout=timeout,
            caller=auth.caller,
        )
    else:
        record = await service.transfer(
            body.source_account_id,
            body.destination_account_id,
            body.amount,
            idempotency_key=key,
            description=body.description,
            timeout=timeout,
        )
    return answer(record, response)
