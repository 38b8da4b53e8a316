"""Variant "template-async": the routes as most FastAPI + async SQLAlchemy templates write them.

The comparison this project has to win: `Depends` yielding an `AsyncSession` per request
from `create_async_engine` with its default pool (and `pool_pre_ping`, as templates set),
the bearer token looked up in the same dependency chain on every request (one query: the
token's user), then the ORM: `session.get` for a read, read-check-update and commit for a
transfer. No cache, no group commit, no middleware: what a new project starts from.
Correct for this workload (the balance moves in one guarded UPDATE, never read-modify-write,
with the schema's kept totals: lab/bench/sql.py).
"""

# No `from __future__ import annotations`: the routes' annotations name aliases local to
# the factory (SessionDep, CurrentUser), which FastAPI could not resolve from strings.
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from api.schemas import AccountOut, TransferIn, TransferOut
from lab.bench.http.template_shape import REPLAY_HEADER, healthz, transfer_out
from models import Account, ApiToken, Transfer, User

Credentials = Annotated[HTTPAuthorizationCredentials, Depends(HTTPBearer())]


def template_async_app() -> FastAPI:
    """The async template on DATABASE_URL."""
    engine = create_async_engine(os.environ["DATABASE_URL"], pool_pre_ping=True)
    session_factory = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    async def get_session() -> AsyncIterator[AsyncSession]:
        async with session_factory() as session:
            yield session

    SessionDep = Annotated[AsyncSession, Depends(get_session)]

    async def current_user(session: SessionDep, credentials: Credentials) -> User:
        digest = hashlib.sha256(credentials.credentials.encode()).hexdigest()
        user = await session.scalar(
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
    async def read_account(account_id: int, session: SessionDep, user: CurrentUser) -> Account:
        account = await session.get(Account, account_id)
        if account is None or account.owner_id != user.id:
            raise HTTPException(404, "account not found")
        return account

    @app.post("/transfers", status_code=201, response_model=TransferOut)
    async def create_transfer(
        body: TransferIn,
        session: SessionDep,
        user: CurrentUser,
        response: Response,
        idempotency_key: Annotated[str, Header(max_length=128)],
    ) -> TransferOut:
        scope = f"user:{user.id}"
        earlier = await session.scalar(
            select(Transfer).where(
                Transfer.idempotency_scope == scope, Transfer.idempotency_key == idempotency_key
            )
        )
        if earlier is not None:
            response.headers[REPLAY_HEADER] = "true"
            return transfer_out(earlier)
        source = await session.get(Account, body.source_account_id)
        if source is None or source.owner_id != user.id:
            raise HTTPException(404, "account not found")
        debit = await session.execute(
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
        credit = await session.execute(
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
        await session.commit()
        return transfer_out(transfer)

    return app
