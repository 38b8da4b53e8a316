"""The one backoff rule: every wait that grows with failures, or with empty polls."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from services.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: wait number n lasts between half and all of
    min(cap, base * 2**(n-1)) seconds, so waiters that failed together do not retry
    together, and none waits less than half its step (no retry storm at zero).

    Used for a busy database's transaction retries (services/transactions.py), a failed
    job's next run (`JobQueue(retry=...)`) and an idle worker's polls (services/worker).
    """

    base_seconds: float = 1.0
    cap_seconds: float = 300.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.base_seconds <= self.cap_seconds:
            raise InvalidInput("backoff needs 0 <= base_seconds <= cap_seconds")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failure (or empty poll) number `attempt`, counted from 1."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2.0 ** max(attempt - 1, 0))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)
