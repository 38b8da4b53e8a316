"""Variant 3, the lesson's "stick with sync": `def` endpoints on blocking sqlite3 / psycopg.

FastAPI runs each `def` endpoint in its thread pool (anyio's, 40 threads by default;
BENCH_HTTP_THREADS raises it), so a request holds a thread for as long as it blocks. The
routes, bodies and answers are the API's; the SQL is the bench's (bench/http/blocking_db.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI, Response

from api.schemas import AccountOut, TransferIn, TransferOut
from lab.bench.http.blocking_db import BlockingLedger
from lab.bench.http.common_app import AccountId, Credentials, IdempotencyKey, dress, token_of
from lab.bench.http.rows import REMOTE_SECONDS
from lab.bench.http.template_shape import REPLAY_HEADER
from lab.bench.ops import Op

THREADS_ENV = "BENCH_HTTP_THREADS"


def sync_app() -> FastAPI:
    """The app, on DATABASE_URL; its thread pool BENCH_HTTP_THREADS wide (default 40)."""
    ledger = BlockingLedger(os.environ["DATABASE_URL"])
    threads = int(os.environ.get(THREADS_ENV, "0"))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if threads:
            to_thread.current_default_thread_limiter().total_tokens = threads
        yield

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/transfers", status_code=201, response_model=TransferOut)
    def transfer(
        body: TransferIn, key: IdempotencyKey, response: Response, credentials: Credentials
    ) -> TransferOut:
        caller = ledger.caller(token_of(credentials))
        op = Op(body.source_account_id, body.destination_account_id, body.amount)
        record, replayed = ledger.transfer(caller, op, key, body.description)
        if replayed:
            response.headers[REPLAY_HEADER] = "true"
        return record

    @app.get("/accounts/{account_id}", response_model=AccountOut)
    def get_account(account_id: AccountId, credentials: Credentials) -> AccountOut:
        return ledger.account(ledger.caller(token_of(credentials)), account_id)

    @app.get("/bench/waits-elsewhere/{account_id}", response_model=AccountOut)
    def waits_elsewhere(account_id: int, credentials: Credentials) -> AccountOut:
        caller = ledger.caller(token_of(credentials))
        # The blocking stand-in for a slow remote call: the thread is held the whole time.
        time.sleep(REMOTE_SECONDS)
        return ledger.account(caller, account_id)

    @app.get("/bench/waits-in-db/{account_id}", response_model=AccountOut)
    def waits_in_db(account_id: int) -> AccountOut:
        return ledger.account(None, account_id, db_sleep=True)

    return dress(app)
