"""What the lifespan builds once per process and every request reads."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.metrics import ApiMetrics
from api.settings import ApiSettings
from services import TokenCache, TransferBatcher


@dataclass(frozen=True, slots=True)
class AppState:
    """The engine, the session factory, the batcher (None when turned off), the metrics,
    the token cache."""

    settings: ApiSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    batcher: TransferBatcher | None
    metrics: ApiMetrics
    tokens: TokenCache


async def app_state(request: Request) -> AppState:
    """The state the lifespan stored on the app (async: no thread-pool trip, see api/deps.py)."""
    state: AppState = request.app.state.ledger
    return state
