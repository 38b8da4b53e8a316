"""Bearer tokens: `Authorization: Bearer <token>` to the authenticated caller.

A missing or wrong token is 401 with `WWW-Authenticate: Bearer`. The token is never
logged, put in an error or a metric: the problem says only that it is not valid.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.state import AppState, app_state
from services import AccessService, Authenticated
from services.errors import InvalidToken

bearer = HTTPBearer(auto_error=False, description="the token from POST /users or ledgerctl")


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    state: Annotated[AppState, Depends(app_state)],
) -> Authenticated:
    """The caller behind the request's bearer token; InvalidToken (401) otherwise."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise InvalidToken("an Authorization: Bearer <token> header is required")
    found = await AccessService(state.sessions).authenticate(
        credentials.credentials, timeout=state.settings.request_timeout
    )
    request.state.token = credentials.credentials
    return found
