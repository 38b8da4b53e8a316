"""What every command receives."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import DatabaseSettings


@dataclass(frozen=True, slots=True)
class AppContext:
    """Settings, the engine and the session factory of one CLI run."""

    settings: DatabaseSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
