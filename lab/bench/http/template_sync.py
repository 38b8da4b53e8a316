"""Variant "template-sync": the routes as the popular sync FastAPI templates write them.

`def` routes and a `def` dependency yielding a `Session` from `create_engine` with its
default pool (5 connections + 10 overflow, 30 s pool timeout), the same token lookup and
the same ORM work as the async template (template_async.py), on psycopg or sqlite3.

FastAPI runs every `def` route and `def` dependency in one thread pool (40 threads). Past
15 concurrent requests, threads wait in the connection pool for a connection, while the
requests that hold the connections need a thread from that same, exhausted pool to run
their dependency's teardown that gives the connection back: the server stalls until the
pool timeout frees a thread (fastapi/fastapi#3205). docs/benchmarks.md shows it.
"""

# No `from __future__ import annotations`: the routes' annotations name aliases local to
# the factory (SessionDep, CurrentUser), which FastAPI could not resolve from strings.
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import create_engine, make_url, select, update
from sqlalchemy.orm import Session, sessionmaker

from api.schemas import AccountOut, TransferIn, TransferOut
from lab.bench.http.template_shape import REPLAY_HEADER, healthz, transfer_out
from models import Account, ApiToken, Transfer, User

Credentials = Annotated[HTTPAuthorizationCredentials, Depends(HTTPBearer())]
_BLOCKING_DRIVERS = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}


def template_sync_app() -> FastAPI:
    """The sync template on DATABASE_URL (its blocking driver)."""
    url = make_url(os.environ["DATABASE_URL"])
    engine = create_engine(
        url.set(drivername=_BLOCKING_DRIVERS[url.get_backend_name()]), pool_pre_ping=True
    )
    session_factory = sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    def get_session() -> Iterator[Session]:
        with session_factory() as session:
            yield session

    SessionDep = Annotated[Session, Depends(get_session)]

    def current_user(session: SessionDep, credentials: Credentials) -> User:
        digest = hashlib.sha256(credentials.credentials.encode()).hexdigest()
        user = session.scalar(
            select(User)
            .join(ApiToken, ApiToken.user_id == User.id)
            .where(ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None))
        )
        if user is None:
            raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
        return user

    CurrentUser = Annotated[User, Depends(current_user)]
    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.get("/healthz")(healthz)

    @app.get("/accounts/{account_id}", response_model=AccountOut)
    def read_account(account_id: int, session: SessionDep, user: CurrentUser) -> Account:
        account = session.get(Account, account_id)
        if account is None or account.owner_id != user.id:
            raise HTTPException(404, "account not found")
        return account

    @app.post("/transfers", status_code=201, response_model=TransferOut)
    def create_transfer(
        body: TransferIn,
        session: SessionDep,
        user: CurrentUser,
        response: Response,
        idempotency_key: Annotated[str, Header(max_length=128)],
    ) -> TransferOut:
        scope = f"user:{user.id}"
        earlier = session.scalar(
            select(Transfer).where(
                Transfer.idempotency_scope == scope, Transfer.idempotency_key == idempotency_key
            )
        )
        if earlier is not None:
            response.headers[REPLAY_HEADER] = "true"
            return transfer_out(earlier)
        source = session.get(Account, body.source_account_id)
        if source is None or source.owner_id != user.id:
            raise HTTPException(404, "account not found")
        debit = session.execute(
            update(Account)
            .where(Account.id == source.id, Account.balance >= body.amount)
            .values(
                balance=Account.balance - body.amount,
                sent_low=Account.sent_low + body.amount,
                movements=Account.movements + 1,
            )
            .execution_options(synchronize_session=False)
        )
        if debit.rowcount != 1:  # type: ignore[attr-defined]
            raise HTTPException(422, "insufficient funds")
        credit = session.execute(
            update(Account)
            .where(Account.id == body.destination_account_id)
            .values(
                balance=Account.balance + body.amount,
                received_low=Account.received_low + body.amount,
                movements=Account.movements + 1,
            )
            .execution_options(synchronize_session=False)
        )
        if credit.rowcount != 1:  # type: ignore[attr-defined]
            raise HTTPException(404, "destination account not found")
        transfer = Transfer(
            source_account_id=source.id,
            destination_account_id=body.destination_account_id,
            amount=body.amount,
            currency=source.currency,
            idempotency_scope=scope,
            idempotency_key=idempotency_key,
            description=body.description,
        )
        session.add(transfer)
        session.commit()
        return transfer_out(transfer)

    return app
