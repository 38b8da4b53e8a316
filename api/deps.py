"""Dependencies every route may share: the app's state and the Idempotency-Key header.

The caller and the services acting for it come from the request's Ledger (api/ledger.py).
Every dependency is `async def` although none awaits: FastAPI runs a plain `def`
dependency in its thread pool, a round trip to another thread per dependency and
request that costs more than the dependency itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from api.state import AppState, app_state

State = Annotated[AppState, Depends(app_state)]


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
