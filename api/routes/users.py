"""/users: register (the only unauthenticated write) and who am I."""

from __future__ import annotations

from fastapi import APIRouter

from api.ledger import CallerLedger, PublicLedger
from api.schemas import RegisteredOut, RegisterIn, UserOut

router = APIRouter(tags=["users"])


@router.post("/users", status_code=201, response_model=RegisteredOut)
async def register(body: RegisterIn, ledger: PublicLedger) -> RegisteredOut:
    """Register a user; the answer holds their API token, shown only this once."""
    made = await ledger.access().register(body.email, body.name)
    return RegisteredOut(user=UserOut.model_validate(made.user), token=made.token)


@router.get("/users/me", response_model=UserOut)
async def me(ledger: CallerLedger) -> UserOut:
    """The calling user."""
    return UserOut.model_validate(ledger.user)
