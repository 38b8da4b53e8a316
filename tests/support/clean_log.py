"""Capture what a block logs and what asyncio reports to its exception handler.

A cancelled operation must leave a clean log: no "Future exception was never retrieved"
(asyncio's exception handler, called when such a future is garbage collected) and no
error logged by SQLAlchemy's pool or asyncpg.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LogCapture:
    """Warnings and errors logged, and asyncio exception-handler reports, as text lines."""

    lines: list[str] = field(default_factory=list)

    def cancellation_noise(self) -> list[str]:
        """The lines issue 10 reported: an unretrieved future, a failed close/terminate.
        (A pool reset interrupted by a cancellation is logged too; a known limit.)"""
        markers = ("never retrieved", "closing connection", "terminating connection")
        return [line for line in self.lines if any(m in line for m in markers)]


class _Collect(logging.Handler):
    def __init__(self, capture: LogCapture) -> None:
        super().__init__(logging.WARNING)
        self.capture = capture

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        self.capture.lines.append(f"{record.name}: {record.getMessage()} {error!r}")


@asynccontextmanager
async def captured_log() -> AsyncIterator[LogCapture]:
    """Collect for the duration of the block; unreachable futures are collected at its end
    so that their "never retrieved" reports land inside it."""
    capture = LogCapture()
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def on_exception(_: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        capture.lines.append(f"asyncio: {context.get('message')} {context.get('exception')!r}")

    handler = _Collect(capture)
    root = logging.getLogger()
    root.addHandler(handler)
    loop.set_exception_handler(on_exception)
    try:
        yield capture
        for _ in range(3):
            await asyncio.sleep(0.05)  # let closed transports call connection_lost()
            gc.collect()
    finally:
        loop.set_exception_handler(previous)
        root.removeHandler(handler)
