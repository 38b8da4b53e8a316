"""A server process's CPU time and peak memory, read from /proc (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU seconds (user + system) so far and peak resident memory (bytes) so far."""

    cpu_seconds: float
    peak_rss: int


def usage(pid: int) -> Usage:
    """The process's usage now; zeros where /proc is not there."""
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():
        return Usage(0.0, 0)
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat.read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14 and 15
    peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    return Usage(cpu, peak)


def pinning() -> tuple[int, int] | None:
    """(server core, wrk core) on a machine with two cores or more and taskset; else None."""
    from shutil import which

    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cores) < 2 or which("taskset") is None:
        return None
    return cores[0], cores[1]
