"""A latency histogram of fixed size, so a long soak does not grow with its own bookkeeping."""

from __future__ import annotations

import math
from typing import Final

_SMALLEST_S: Final = 1e-6
_GROWTH: Final = 1.05  # each bucket is 5% wider than the one before: p99 within 5%


class LatencyHistogram:
    """Counts latencies in logarithmic buckets from 1 µs up; quantiles are bucket bounds."""

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self.count = 0
        self.max = 0.0

    def record(self, seconds: float) -> None:
        """Add one latency."""
        index = math.floor(math.log(max(seconds, _SMALLEST_S) / _SMALLEST_S, _GROWTH))
        self._buckets[index] = self._buckets.get(index, 0) + 1
        self.count += 1
        self.max = max(self.max, seconds)

    def quantile(self, q: float) -> float:
        """The latency below which a fraction `q` of the recorded ones fall (upper bound)."""
        if not 0 < q <= 1:
            raise ValueError(f"q must be in (0, 1], got {q}")
        if not self.count:
            return 0.0
        rank = math.ceil(q * self.count)
        seen = 0
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen >= rank:
                return min(_SMALLEST_S * _GROWTH ** (index + 1), self.max)
        return self.max
