"""A line of progress for long commands (the worker, the audit)."""

from __future__ import annotations

import time
from typing import TextIO


class ProgressLine:
    """One line of progress: rewritten in place on a terminal, appended otherwise."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._live = out.isatty()
        self._shown = False

    def show(self, text: str) -> None:
        """Replace the line with `text`."""
        if self._live:
            self._out.write(f"\r{text}\x1b[K")
        else:
            self._out.write(f"{text}\n")
        self._out.flush()
        self._shown = True

    def finish(self, text: str) -> None:
        """Print `text` on a line of its own, below the progress line."""
        if self._live and self._shown:
            self._out.write("\n")
        self._out.write(f"{text}\n")
        self._out.flush()
        self._shown = False


class AuditProgress:
    """`ledgerctl audit`'s progress on stderr, at most one line a second, so that a small
    ledger prints none and a large one says how far the audit got."""

    def __init__(self, out: TextIO, interval: float = 1.0) -> None:
        self._line = ProgressLine(out)
        self._interval = interval
        self._started = self._shown_at = time.monotonic()
        self._shown = False

    def __call__(self, done: int, last: int) -> None:
        """The audit read the history up to transfer id `done` of `last`."""
        now = time.monotonic()
        if now - self._shown_at < self._interval:
            return
        self._shown_at, self._shown = now, True
        rate = done / max(now - self._started, 1e-9)
        self._line.show(
            f"audit: history read up to transfer {done:,} of {last:,} "
            f"({100 * done // max(last, 1)}%, {rate:,.0f} ids/s)"
        )

    def finish(self) -> None:
        """End the progress line, if one was shown."""
        if self._shown:
            seconds = time.monotonic() - self._started
            self._line.finish(f"audit: done in {seconds:.1f} s")
