"""Minimal connection pools for the raw-driver variants (SQLAlchemy brings its own)."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Generic, TypeVar

C = TypeVar("C")


class AsyncPool(Generic[C]):
    """A fixed set of connections lent to tasks, one task at a time each."""

    def __init__(self, connections: list[C]) -> None:
        self.connections = connections
        self._idle: asyncio.Queue[C] = asyncio.Queue()
        for connection in connections:
            self._idle.put_nowait(connection)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[C]:
        """Borrow a connection for the block; wait while all are lent out."""
        connection = await self._idle.get()
        try:
            yield connection
        finally:
            self._idle.put_nowait(connection)


class BlockingPool(Generic[C]):
    """The same for threads."""

    def __init__(self, connections: list[C]) -> None:
        self.connections = connections
        self._idle: queue.SimpleQueue[C] = queue.SimpleQueue()
        for connection in connections:
            self._idle.put(connection)

    @contextmanager
    def connection(self) -> Iterator[C]:
        """Borrow a connection for the block; block while all are lent out."""
        connection = self._idle.get()
        try:
            yield connection
        finally:
            self._idle.put(connection)
