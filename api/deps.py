"""Dependencies: the authenticated caller and the services acting for it.

Every service is built per request with the caller (services/callers.py), so the rules
of who may do what are the services' own, not the routes'. Building one is cheap: it
holds the session factory and the caller; the engine and pool live in AppState.

Every dependency is `async def` although none awaits: FastAPI runs a plain `def`
dependency in its thread pool, a round trip to another thread per dependency and
request that cost more than the dependency itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from api.auth import authenticated
from api.state import AppState, app_state
from services import (
    AccessService,
    AccountService,
    Authenticated,
    BackOffice,
    DashboardService,
    TransferService,
    UserService,
)

State = Annotated[AppState, Depends(app_state)]
Auth = Annotated[Authenticated, Depends(authenticated)]


class MissingIdempotencyKey(Exception):
    """A money-moving POST came without an Idempotency-Key header (400)."""


async def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="required: a retry with the same key and body moves money once",
            max_length=128,
        ),
    ] = None,
) -> str:
    """The Idempotency-Key header of a money-moving POST."""
    if key is None:
        raise MissingIdempotencyKey
    return key


IdempotencyKey = Annotated[str, Depends(idempotency_key)]


async def access(state: State) -> AccessService:
    """Registration and tokens (no caller: anyone may register a plain user)."""
    return AccessService(state.sessions)


async def accounts(state: State, auth: Auth) -> AccountService:
    """Accounts, for the caller."""
    return AccountService(state.sessions, caller=auth.caller)


async def users(state: State, auth: Auth) -> UserService:
    """Users, for the caller."""
    return UserService(state.sessions, caller=auth.caller)


async def transfers(state: State, auth: Auth) -> TransferService:
    """Transfers without the batcher, for the caller."""
    return TransferService(state.sessions, caller=auth.caller)


async def dashboards(state: State, auth: Auth) -> DashboardService:
    """The dashboard, for the caller."""
    return DashboardService(state.sessions, caller=auth.caller)


async def back_office(state: State, auth: Auth) -> BackOffice:
    """Operators' reads, for the caller."""
    return BackOffice(state.sessions, caller=auth.caller)
