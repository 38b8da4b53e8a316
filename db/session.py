"""The session factory every service receives."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit.

    With the default expire_on_commit=True, touching an attribute after commit would
    trigger a refresh: hidden IO that in async code raises MissingGreenlet instead.
    """
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
