"""Variants 1 and 2: the project's own app (api.create_app) plus the bench-only wait routes.

`service_app` answers POST /transfers with one TransferService transaction per request;
`batcher_app` is the default app, group commit through the TransferBatcher. The wait
routes are added here, never in api/: the API does not gain bench routes.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, FastAPI, Request
from sqlalchemy import text

from api import ApiSettings, create_app
from api.schemas import AccountOut
from lab.bench.http.common_app import Credentials, token_of
from lab.bench.http.rows import (
    ACCOUNT_NAMED,
    DB_SLEEP_SECONDS,
    REMOTE_SECONDS,
    SLEEP_NAMED,
    account_out,
)
from services import AccessService, AccountService
from services.errors import AccountNotFound

router = APIRouter(prefix="/bench", include_in_schema=False)


async def _account(request: Request, account_id: int, *, db_sleep: bool) -> AccountOut:
    # The app's own session factory, which its lifespan made (api/state.py).
    sessions = request.app.state.ledger.sessions
    async with sessions() as session:
        if db_sleep:
            await session.execute(text(SLEEP_NAMED), {"seconds": DB_SLEEP_SECONDS})
        row = (await session.execute(text(ACCOUNT_NAMED), {"id": account_id})).first()
    if row is None:
        raise AccountNotFound(account_id)
    return account_out(tuple(row))


@router.get("/waits-elsewhere/{account_id}", response_model=AccountOut)
async def waits_elsewhere(
    account_id: int, request: Request, credentials: Credentials
) -> AccountOut:
    """The bearer token authenticated, a 100 ms remote call (awaited: the loop serves
    others meanwhile), then the account read for the caller: the app's own services."""
    state = request.app.state.ledger  # what the app's lifespan built (api/state.py)
    access = AccessService(state.sessions, tokens=state.tokens)
    found = await access.authenticate(token_of(credentials))
    await asyncio.sleep(REMOTE_SECONDS)
    account = await AccountService(state.sessions, caller=found.caller).get(account_id)
    return AccountOut.model_validate(account)


@router.get("/waits-in-db/{account_id}", response_model=AccountOut)
async def waits_in_db(account_id: int, request: Request) -> AccountOut:
    """pg_sleep(0.1) on a pooled connection, then one row: the pool caps concurrency."""
    return await _account(request, account_id, db_sleep=True)


def _app(batch: bool) -> FastAPI:
    settings = ApiSettings.from_env().replace(batch_transfers=batch)
    app = create_app(settings)
    app.include_router(router)
    return app


def service_app() -> FastAPI:
    """Variant 1: POST /transfers is one TransferService transaction per request."""
    return _app(batch=False)


def batcher_app() -> FastAPI:
    """Variant 2: the default app, POST /transfers group-committed by the batcher."""
    return _app(batch=True)
