"""A bound on concurrent queries that every service instance over one engine shares.

A service built per request (as the HTTP API builds its DashboardService) would bound
nothing with a semaphore of its own: the bound must live with the engine, whose pool it
protects. One limit per engine and bound, per process; an engine's limits go with it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from services.transactions import Sessions


class QueryLimit:
    """At most `bound` queries at once; `running` and `waiting` say how many now."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.running = 0
        self.waiting = 0
        self._slots = asyncio.Semaphore(bound)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the `bound` slots for the block, waiting for one if need be."""
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._slots.release()


# Per engine (weakly, so a disposed engine's limits go with it), then per bound.
_LIMITS: Final[weakref.WeakKeyDictionary[object, dict[int, QueryLimit]]] = (
    weakref.WeakKeyDictionary()
)


def shared_limit(sessions: Sessions, bound: int) -> QueryLimit:
    """The limit of `bound` queries shared by everything over the engine of `sessions`
    (a factory bound to something else than an engine gets one of its own)."""
    bind = sessions.kw.get("bind")
    owner: object = bind.sync_engine if isinstance(bind, AsyncEngine) else sessions
    by_bound = _LIMITS.setdefault(owner, {})
    if bound not in by_bound:
        by_bound[bound] = QueryLimit(bound)
    return by_bound[bound]
