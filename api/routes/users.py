"""/users: register (the only unauthenticated write) and who am I."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from api.deps import Auth, State, access
from api.schemas import RegisteredOut, RegisterIn, UserOut
from services import AccessService

router = APIRouter(tags=["users"])


@router.post("/users", status_code=201, response_model=RegisteredOut)
async def register(
    body: RegisterIn, service: Annotated[AccessService, Depends(access)], state: State
) -> RegisteredOut:
    """Register a user; the answer holds their API token, shown only this once."""
    made = await service.register(body.email, body.name, timeout=state.settings.request_timeout)
    return RegisteredOut(user=UserOut.model_validate(made.user), token=made.token)


@router.get("/users/me", response_model=UserOut)
async def me(auth: Auth) -> UserOut:
    """The calling user."""
    return UserOut.model_validate(auth.user)
