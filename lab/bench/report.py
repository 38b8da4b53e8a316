"""What the terminal shows: a progress bar while running, a table per workload."""

from __future__ import annotations

import shutil
import time
from typing import TextIO

from lab.bench.calibration import Calibration
from lab.bench.harness import Row, WorkloadResult
from lab.bench.workloads.base import Case, Workload

BAR_WIDTH = 24


class Progress:
    """A one-line progress bar on a terminal; silent when the stream is not one."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self.total = max(total, 1)
        self.done = 0
        self._stream = stream
        self._enabled = enabled
        self._started = time.monotonic()

    def step(self, workload: Workload, case: Case, rep: int) -> None:
        """Show the run about to start; count the one before it as done."""
        if self.done < self.total:
            self.done += 1
        if not self._enabled:
            return
        filled = BAR_WIDTH * (self.done - 1) // self.total
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        elapsed = time.monotonic() - self._started
        text = (
            f"[{bar}] {self.done}/{self.total} {elapsed:4.0f}s  {workload.name}: "
            f"{case.variant.label}, clients {case.clients}, pool {case.pool}, rep {rep + 1}"
        )
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self._stream.write("\r\x1b[K" + text[:width])
        self._stream.flush()

    def clear(self) -> None:
        """Erase the bar (before a table is printed)."""
        if self._enabled:
            self._stream.write("\r\x1b[K")
            self._stream.flush()


def number(value: float) -> str:
    """Throughput with thousands separators."""
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def ratio(value: float) -> str:
    """A ratio with precision that suits its size."""
    if value != value:  # NaN: the reference completed nothing
        return "n/a"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def millis(value: float) -> str:
    """A latency in milliseconds, to about three significant digits; '-' if unmeasured."""
    if value != value:  # NaN: the run had no operations
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def per_op(value: float) -> str:
    """A per-operation count."""
    return f"{value:.1f}" if value else "0"


HEADERS = (
    "variant",
    "clients",
    "pool",
    "median",
    "min-max",
    "vs ref",
    "µs/op",
    "p50 ms",
    "p99 ms",
    "stmts/op",
    "commits/op",
    "hops/op",
    "in hops",
    "errors",
    "correct",
)
RIGHT_ALIGNED = frozenset(range(1, 14))


def cells(row: Row, calibration: Calibration | None) -> list[str]:
    """One table row."""
    share = calibration.hop_share(row) if calibration is not None else None
    return [
        row.case.variant.label + (" *" if row.case.reference else ""),
        str(row.case.clients),
        str(row.case.pool),
        number(row.median),
        f"{number(row.low)}-{number(row.high)}",
        ratio(row.ratio),
        f"{row.us_per_op:,.0f}",
        millis(row.p50_ms),
        millis(row.p99_ms),
        per_op(row.per_op("statements")),
        per_op(row.per_op("commits")),
        per_op(row.per_op("hops")),
        "-" if share is None else f"{share:.0%}",
        str(sum(row.errors.values())),
        row.verdict,
    ]


def render_table(result: WorkloadResult, calibration: Calibration | None) -> str:
    """The workload's table, with its heading and notes, as text."""
    workload = result.workload
    reference = result.reference.case
    lines = [
        f"{workload.title}",
        f"  {result.size} operations per run, {result.reps} repetitions, "
        f"{result.seconds:.0f} s; {workload.unit}: median and min-max over repetitions; "
        f"vs ref: median of paired ratios to * ({reference.variant.label}, "
        f"{reference.clients} client); p50/p99 ms: request latency, median over repetitions",
    ]
    table = [list(HEADERS), *(cells(row, calibration) for row in result.rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]

    def fmt(line: list[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in RIGHT_ALIGNED else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ).rstrip()

    lines.append(fmt(table[0]))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(fmt(line) for line in table[1:])
    for row in result.rows:
        for message, count in row.errors.most_common(2):
            lines.append(
                f"  ! {row.case.variant.label} ({row.case.clients} clients): {count} x {message}"
            )
        for run in row.runs:
            if not run.check.ok and run.check.problems:
                lines.append(f"  ! {row.case.variant.label}: {run.check.problems[0]}")
                break
    lines.extend(f"  {note}" for note in result.notes)
    if calibration is not None and workload.name == "hops":
        hops = ", ".join(f"{via} {us:.0f} µs" for via, us in calibration.hop_us.items())
        lines.append(
            f"  one thread hop costs: {hops}; a SELECT 1 in sqlite3 costs "
            f"{calibration.sqlite_statement_us:.1f} µs"
        )
    return "\n".join(lines)
