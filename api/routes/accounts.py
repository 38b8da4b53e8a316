"""/accounts: open, list, read, history (paged or streamed), deposits (operators) and
withdrawals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from api.deps import IdempotencyKey
from api.ledger import CallerLedger
from api.routes.money import MONEY_RESPONSES, answer
from api.schemas import AccountIn, AccountOut, HistoryOut, Id, MoneyIn, TransferOut
from services.validation import MAX_ID

router = APIRouter(tags=["accounts"])
AccountId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.post("/accounts", status_code=201, response_model=AccountOut)
async def open_account(body: AccountIn, ledger: CallerLedger) -> AccountOut:
    """Open an empty account of the calling user."""
    assert ledger.user.id is not None
    account = await ledger.accounts().open(ledger.user.id, body.currency)
    return AccountOut.model_validate(account)


@router.get("/accounts", response_model=list[AccountOut])
async def list_accounts(ledger: CallerLedger) -> list[AccountOut]:
    """The calling user's accounts, oldest first."""
    found = await ledger.accounts().for_owner(ledger.user.id)
    return [AccountOut.model_validate(a) for a in found]


@router.get("/accounts/{account_id}", response_model=AccountOut)
async def get_account(account_id: AccountId, ledger: CallerLedger) -> AccountOut:
    """One account (another user's reads as not found, unless the caller is an operator)."""
    account = await ledger.accounts().get(account_id)
    return AccountOut.model_validate(account)


@router.get("/accounts/{account_id}/transfers", response_model=HistoryOut)
async def history(
    request: Request,
    account_id: AccountId,
    ledger: CallerLedger,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[Id | None, Query(description="a transfer id: the page older than it")] = None,
) -> HistoryOut:
    """The account's transfers, newest first, in keyset pages: follow `next`."""
    page = await ledger.accounts().history(account_id, limit=limit, before=before)
    following = None
    if page.next_before is not None:
        # Relative, so it is right behind any proxy that rewrites the host.
        following = f"{request.url.path}?{urlencode({'limit': limit, 'before': page.next_before})}"
    return HistoryOut(items=[TransferOut.model_validate(t) for t in page.items], next=following)


NDJSON = "application/x-ndjson"


@router.get(
    "/accounts/{account_id}/transfers/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One TransferOut per line, oldest first",
            "content": {NDJSON: {"schema": {"type": "string"}}},
        }
    },
)
async def export_history(account_id: AccountId, ledger: CallerLedger) -> Response:
    """The account's whole history, oldest first, one JSON transfer per line (NDJSON),
    streamed from the database in batches: memory stays flat however long it is."""
    # Checked before the 200 goes out: another user's account is a 404 problem, not a
    # stream that breaks off. (The stream checks again, inside its own snapshot.)
    service = ledger.accounts()
    await service.get(account_id)

    async def lines() -> AsyncIterator[str]:
        async with service.history_stream(account_id) as transfers:
            async for transfer in transfers:
                yield TransferOut.model_validate(transfer).model_dump_json() + "\n"

    return StreamingResponse(lines(), media_type=NDJSON)


@router.post(
    "/accounts/{account_id}/deposits",
    status_code=201,
    response_model=TransferOut,
    responses=MONEY_RESPONSES,
)
async def deposit(
    account_id: AccountId,
    body: MoneyIn,
    key: IdempotencyKey,
    response: Response,
    ledger: CallerLedger,
) -> TransferOut:
    """Money entering the ledger (operators only: a back-office confirmation)."""
    record = await ledger.accounts().deposit(
        account_id,
        body.amount,
        idempotency_key=key,
        description=body.description,
    )
    return answer(record, response)


@router.post(
    "/accounts/{account_id}/withdrawals",
    status_code=201,
    response_model=TransferOut,
    responses=MONEY_RESPONSES,
)
async def withdraw(
    account_id: AccountId,
    body: MoneyIn,
    key: IdempotencyKey,
    response: Response,
    ledger: CallerLedger,
) -> TransferOut:
    """Money leaving the ledger from one of the caller's accounts."""
    record = await ledger.accounts().withdraw(
        account_id,
        body.amount,
        idempotency_key=key,
        description=body.description,
    )
    return answer(record, response)
