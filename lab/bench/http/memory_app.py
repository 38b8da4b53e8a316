"""Variant 4 (bench only): the same routes with the database replaced by building the
answer in memory. It parses, validates and answers exactly like the API, so its rate is
the HTTP stack's own ceiling for these requests, and the database path's cost shows."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from fastapi import FastAPI

from api.schemas import AccountOut, TransferIn, TransferOut
from lab.bench.http.common_app import AccountId, Credentials, IdempotencyKey, dress, token_of


def memory_app() -> FastAPI:
    """The in-memory app; ids count up from 1 per process."""
    ids = itertools.count(1)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/transfers", status_code=201, response_model=TransferOut)
    async def transfer(
        body: TransferIn, key: IdempotencyKey, credentials: Credentials
    ) -> TransferOut:
        token_of(credentials)
        return TransferOut(
            id=next(ids),
            kind="transfer",
            source_account_id=body.source_account_id,
            destination_account_id=body.destination_account_id,
            amount=body.amount,
            currency="EUR",
            idempotency_key=key,
            description=body.description,
            created_at=datetime.now(UTC),
        )

    @app.get("/accounts/{account_id}", response_model=AccountOut)
    async def get_account(account_id: AccountId, credentials: Credentials) -> AccountOut:
        token_of(credentials)
        now = datetime.now(UTC)
        return AccountOut(
            id=account_id, owner_id=1, currency="EUR", balance=0, created_at=now, updated_at=now
        )

    return dress(app)
