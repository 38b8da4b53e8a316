"""Resident memory of this process, and whether a series of samples keeps growing."""

from __future__ import annotations

import itertools
import os
import resource
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

MIB: Final = 1024 * 1024
_STATM = Path("/proc/self/statm")


def rss_bytes() -> int:
    """Resident set size now (Linux), else the peak so far (getrusage)."""
    try:
        resident_pages = int(_STATM.read_text().split()[1])
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB else
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class MemoryTrend:
    """RSS over a run. `growing` is None when the run was too short to judge."""

    start: int
    end: int
    peak: int
    quarter_medians: tuple[int, ...]
    growing: bool | None

    def describe(self) -> str:
        verdict = {None: "not judged (run too short)", True: "KEEPS GROWING", False: "stable"}
        quarters = ", ".join(f"{m / MIB:.1f}" for m in self.quarter_medians)
        return (
            f"RSS {self.start / MIB:.1f} -> {self.end / MIB:.1f} MiB "
            f"(peak {self.peak / MIB:.1f}); {verdict[self.growing]}"
            + (f" (quarter medians {quarters} MiB)" if quarters else "")
        )


def judge_memory(
    samples: Sequence[int],
    *,
    warm_up: float = 0.2,
    min_samples: int = 20,
    min_growth: int = 8 * MIB,
) -> MemoryTrend:
    """Growing means: after the warm-up, the median of each quarter of the run is above
    the one before, and the last is `min_growth` above the first. One step up (a pool
    filling, a cache warming) or noise around a level is not growth; a leak is."""
    if not samples:
        return MemoryTrend(0, 0, 0, (), None)
    start, end, peak = samples[0], samples[-1], max(samples)
    steady = list(samples[int(len(samples) * warm_up) :])
    if len(steady) < min_samples:
        return MemoryTrend(start, end, peak, (), None)
    size = len(steady) // 4
    quarters = tuple(int(statistics.median(steady[i * size : (i + 1) * size])) for i in range(4))
    rising = all(later > earlier for earlier, later in itertools.pairwise(quarters))
    growing = rising and quarters[-1] - quarters[0] >= min_growth
    return MemoryTrend(start, end, peak, quarters, growing)
