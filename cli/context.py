"""What every command receives, and how its engine is let go."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import DatabaseSettings


@dataclass(frozen=True, slots=True)
class AppContext:
    """Settings, the engine and the session factory of one CLI run."""

    settings: DatabaseSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


async def dispose(engine: AsyncEngine) -> None:
    """Dispose of `engine` to the end, even when the command is cancelled meanwhile.

    Ctrl-C cancels the command's task wherever it waits; cut short inside the pool's
    close of a connection, SQLAlchemy logs the CancelledError with a traceback and the
    aiosqlite thread of that connection is left running. The cancellation is raised again
    once every connection is closed.
    """
    closing = asyncio.ensure_future(engine.dispose())
    cancelled = False
    while True:
        try:
            await asyncio.shield(closing)
            break
        except asyncio.CancelledError:
            if closing.done():
                raise  # the dispose itself was cancelled: nothing left to wait for
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
