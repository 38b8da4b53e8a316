"""Bearer tokens: `Authorization: Bearer <token>` to the authenticated caller.

A missing or wrong token is 401 with `WWW-Authenticate: Bearer`. The token is never
logged, put in an error or a metric: the problem says only that it is not valid.
Every request authenticates; the process's TokenCache (services/token_cache.py) spares
the database round trip for a token seen within API_TOKEN_CACHE_SECONDS, and forgets a
revoked token at once (in this process, and in every process on PostgreSQL).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.security import HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from api.state import AppState
from services import AccessService, Authenticated
from services.errors import InvalidToken


class BearerCaller(HTTPBearer):
    """The dependency that turns the request's bearer token into its caller; InvalidToken
    (401) otherwise. An HTTPBearer, so the OpenAPI document names the scheme."""

    async def __call__(self, request: Request) -> Authenticated:  # type: ignore[override]
        scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
        if scheme.lower() != "bearer" or not token:
            raise InvalidToken("an Authorization: Bearer <token> header is required")
        state: AppState = request.app.state.ledger
        found = await AccessService(
            state.sessions, timeout=state.settings.request_timeout, tokens=state.tokens
        ).authenticate(token)
        request.state.token = token
        return found


bearer_caller = BearerCaller(
    auto_error=False,
    scheme_name="HTTPBearer",
    description="the token from POST /users or ledgerctl",
)
