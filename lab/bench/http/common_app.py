"""What the bench's own apps (the sync and in-memory variants) share with api.create_app's:
the middleware, errors as problem documents, /healthz, the bearer scheme and the headers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Header, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api import ApiSettings, LedgerMiddleware
from services.errors import AccountNotFound, InsufficientFunds, InvalidToken, LedgerError

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))]
IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", max_length=128)]
AccountId = Annotated[int, Path(ge=1)]
_STATUS = {InvalidToken: 401, AccountNotFound: 404, InsufficientFunds: 422}


def token_of(credentials: HTTPAuthorizationCredentials | None) -> str:
    """The bearer token; InvalidToken (401) without one."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise InvalidToken("an Authorization: Bearer <token> header is required")
    return credentials.credentials


def _problem(status: int, detail: str) -> Response:
    return JSONResponse(
        {"type": "about:blank", "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
    )


def dress(app: FastAPI) -> FastAPI:
    """Add the API's middleware, problem answers and /healthz to a bench app."""
    app.add_middleware(
        LedgerMiddleware, max_body_bytes=ApiSettings().max_body_bytes, metrics=lambda: None
    )

    @app.exception_handler(LedgerError)
    async def ledger_error(request: Request, exc: LedgerError) -> Response:
        return _problem(_STATUS.get(type(exc), 500), str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return _problem(422, str(exc)[:1000])

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
