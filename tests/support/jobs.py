"""Helpers for the job tests: a clock the test moves, and statement counting."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import starts_transaction
from models import utcnow


class FakeClock:
    """A clock that stands still until the test moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start if start is not None else utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += timedelta(seconds=seconds)


class StatementLog:
    """Records the SQL statements an engine sends while attached (BEGIN and the limits set
    with it behind a transaction pooler excluded)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine.sync_engine
        self.statements: list[str] = []

    def _record(self, *args: Any) -> None:
        statement = str(args[2]).strip()
        if not starts_transaction(statement):
            self.statements.append(statement)

    def __enter__(self) -> StatementLog:
        event.listen(self._engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._record)

    def touching(self, table: str) -> list[str]:
        """The statements that mention `table`."""
        return [s for s in self.statements if f" {table}" in s or f"\n{table}" in s]
