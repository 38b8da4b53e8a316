"""Bearer token to caller, remembered for at most a stated bound.

Every request authenticates; without a cache that is a database round trip per request,
as costly as the request's own read. `TokenCache` keeps each lookup for at most
`seconds` (API_TOKEN_CACHE_SECONDS, default 1 s) and forgets everything when a token is
revoked:

- in this process at once: `AccessService.revoke` publishes on the in-process board when
  its transaction commits;
- in other processes on PostgreSQL at once as well: the revoking transaction sends NOTIFY
  on the tokens channel and every cache LISTENs on it (db/wakeups.py); a (re)connected
  listener also clears, since notifications sent while it was away reached no one;
- in other processes on SQLite (which has no NOTIFY): within `seconds`.

So a revoked token is refused on its next request in the revoking process, and everywhere
within `seconds` at worst. A lookup that started before a clear is not stored after it
(the generation check), so a revocation cannot be undone by a slow read in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from db.wakeups import LOCAL, TOKENS_CHANNEL, Wakeups, board_key
from services import validation
from services.results import Authenticated

DEFAULT_SECONDS: Final = 1.0
# Enough for every live token of a busy service; past it the oldest entries go first.
MAX_ENTRIES: Final = 100_000


class TokenCache:
    """Token hash to `Authenticated`, each entry trusted for `seconds` (0: no caching)."""

    def __init__(
        self,
        seconds: float = DEFAULT_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.seconds = validation.seconds(seconds, "token cache seconds", zero=True)
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[str, tuple[float, Authenticated]] = {}
        self.generation = 0  # bumped by every clear
        self._cleared: asyncio.Event | None = None

    def get(self, digest: str) -> Authenticated | None:
        """The caller cached for this token hash, if still within the bound."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        stored, found = entry
        if self._clock() - stored >= self.seconds:
            del self._entries[digest]
            return None
        return found

    def put(self, digest: str, found: Authenticated, generation: int) -> None:
        """Remember a lookup that started at `generation` (dropped if a clear came since)."""
        if not self.seconds or generation != self.generation:
            return
        if len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[digest] = (self._clock(), found)

    def clear(self) -> None:
        """Forget every entry (a token was revoked somewhere)."""
        self._entries.clear()
        self.generation += 1
        if self._cleared is not None:
            self._cleared.set()
            self._cleared = None

    async def wait_cleared(self, since: int) -> None:
        """Return once a clear has come after `generation` was `since`."""
        while self.generation == since:
            if self._cleared is None:
                self._cleared = asyncio.Event()
            await self._cleared.wait()

    @asynccontextmanager
    async def watching(
        self, engine: AsyncEngine, *, listen_url: str | None = None
    ) -> AsyncIterator[TokenCache]:
        """Clear on every revocation in this process and, on PostgreSQL, in any process
        (LISTEN on `listen_url`, default the engine's DB_LISTEN_URL or URL), while entered."""
        async with AsyncExitStack() as stack:
            stack.callback(LOCAL.subscribe(board_key(engine.url, TOKENS_CHANNEL), self.clear))
            if engine.url.get_backend_name() == "postgresql":
                wakeups = Wakeups(
                    engine,
                    self.clear,
                    poll_interval=self.seconds or DEFAULT_SECONDS,
                    listen_url=listen_url,
                    channel=TOKENS_CHANNEL,
                )
                await stack.enter_async_context(wakeups)
            yield self
