"""Counting thread hops: how often work done on another thread wakes the event loop.

aiosqlite runs every call on its connection's worker thread and `asyncio.to_thread` on
the default executor; both hand the result back with `loop.call_soon_threadsafe`, which
writes to the loop's self-pipe to wake it. Counting those calls counts the round trips
between the event loop and a thread, whichever library makes them. asyncpg talks to its
socket from the loop itself and makes none.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

_ATTRIBUTE = "call_soon_threadsafe"


class HopCounter:
    """While active, counts `call_soon_threadsafe` calls on the running loop.

    It shadows the bound method with an instance attribute and removes it on exit; the
    counting wrapper costs well under a microsecond against a hop's tens of microseconds.
    """

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> HopCounter:
        loop = asyncio.get_running_loop()
        if _ATTRIBUTE in vars(loop):
            raise RuntimeError("another HopCounter is already counting on this loop")
        original = loop.call_soon_threadsafe

        def counting(*args: Any, **kwargs: Any) -> asyncio.Handle:
            with self._lock:
                self.count += 1
            return original(*args, **kwargs)

        setattr(loop, _ATTRIBUTE, counting)
        self._loop = loop
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None:
            delattr(self._loop, _ATTRIBUTE)
            self._loop = None
