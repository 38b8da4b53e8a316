"""What the bench's own apps (variants 3 and 4) share with api.create_app's: the
middleware, the problem documents for errors, /healthz, the bearer scheme."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import MissingIdempotencyKey
from api.middleware import LedgerMiddleware
from api.problems import for_ledger_error, http_problem
from api.settings import ApiSettings
from services.errors import InvalidToken, LedgerError

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))]


def token_of(credentials: HTTPAuthorizationCredentials | None) -> str:
    """The bearer token; InvalidToken (401) without one."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise InvalidToken("an Authorization: Bearer <token> header is required")
    return credentials.credentials


def dress(app: FastAPI) -> FastAPI:
    """Add the API's middleware, error answers and /healthz to a bench app."""
    app.add_middleware(
        LedgerMiddleware, max_body_bytes=ApiSettings().max_body_bytes, metrics=lambda: None
    )

    @app.exception_handler(LedgerError)
    async def ledger_error(request: Request, exc: LedgerError) -> Response:
        return for_ledger_error(exc, request_id=getattr(request.state, "request_id", None))

    @app.exception_handler(MissingIdempotencyKey)
    async def missing_key(request: Request, exc: MissingIdempotencyKey) -> Response:
        return http_problem(
            "idempotency-key-missing", "a POST that moves money needs an Idempotency-Key header"
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return http_problem("validation-error", str(exc)[:1000])

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
