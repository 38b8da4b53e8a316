"""Request latency of a run: the median and the 99th percentile of its operations' times."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

NS_PER_MS = 1_000_000


def percentile(ordered: Sequence[int], q: float) -> float:
    """The `q`-th percentile (0-100) of ascending `ordered`, interpolated between the two
    closest ranks (numpy's default), so one sample is its own every percentile."""
    if not ordered:
        raise ValueError("no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0-100")
    position = (len(ordered) - 1) * q / 100
    below = math.floor(position)
    above = math.ceil(position)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


@dataclass(frozen=True, slots=True)
class Latency:
    """p50 and p99 of one run's operations, in milliseconds (NaN when nothing ran)."""

    p50_ms: float
    p99_ms: float

    @classmethod
    def of(cls, samples_ns: Sequence[int]) -> Latency:
        """The percentiles of `samples_ns`, in any order."""
        if not samples_ns:
            return cls(math.nan, math.nan)
        ordered = sorted(samples_ns)
        return cls(
            p50_ms=percentile(ordered, 50) / NS_PER_MS, p99_ms=percentile(ordered, 99) / NS_PER_MS
        )
