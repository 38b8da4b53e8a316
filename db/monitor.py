"""Counters hooked onto an engine's events: pool peak and statements sent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool


class EngineMonitor:
    """Counts what an engine does while attached; use as a context manager.

    `peak_checked_out` is read at every checkout, so it catches the high-water mark
    that sampling `pool_status` now and then would miss.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine.sync_engine
        self.checkouts = 0
        self.peak_checked_out = 0
        self.statements = 0
        self.commits = 0
        self.rollbacks = 0

    def _on_checkout(self, *_: Any) -> None:
        self.checkouts += 1
        pool = self._engine.pool
        if isinstance(pool, QueuePool):
            self.peak_checked_out = max(self.peak_checked_out, pool.checkedout())

    def _on_execute(self, *_: Any) -> None:
        self.statements += 1

    def _on_commit(self, *_: Any) -> None:
        self.commits += 1

    def _on_rollback(self, *_: Any) -> None:
        self.rollbacks += 1

    def __enter__(self) -> EngineMonitor:
        event.listen(self._engine.pool, "checkout", self._on_checkout)
        event.listen(self._engine, "before_cursor_execute", self._on_execute)
        event.listen(self._engine, "commit", self._on_commit)
        event.listen(self._engine, "rollback", self._on_rollback)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self._engine.pool, "checkout", self._on_checkout)
        event.remove(self._engine, "before_cursor_execute", self._on_execute)
        event.remove(self._engine, "commit", self._on_commit)
        event.remove(self._engine, "rollback", self._on_rollback)
