"""What a thread hop costs on this machine, from the `hops` workload's rows."""

from __future__ import annotations

from dataclasses import dataclass

from lab.bench.harness import Row, WorkloadResult
from lab.bench.variants.aiosqlite_raw import AiosqliteRaw
from lab.bench.variants.base import Variant
from lab.bench.variants.sqlite_to_thread import ToThreadPerCall

# The rows that price a hop: the same `SELECT 1` as the reference, plus only the hop.
PRICED_BY: dict[str, type[Variant]] = {"aiosqlite": AiosqliteRaw, "to_thread": ToThreadPerCall}


@dataclass(frozen=True, slots=True)
class Calibration:
    """Microseconds: one sqlite3 `SELECT 1`, and one hop to each kind of thread."""

    sqlite_statement_us: float
    hop_us: dict[str, float]

    def hop_share(self, row: Row) -> float | None:
        """The estimated fraction of a one-client row's time spent in thread hops."""
        via = row.case.variant.hop_via
        hops = row.per_op("hops")
        if row.case.clients != 1 or via is None or via not in self.hop_us or hops == 0:
            return None
        return min(1.0, hops * self.hop_us[via] / row.us_per_op)


def calibrate(result: WorkloadResult) -> Calibration | None:
    """Hop costs: (µs per op - the reference's µs per op) / hops per op."""
    base = result.reference
    hop_us: dict[str, float] = {}
    for via, variant in PRICED_BY.items():
        for row in result.rows:
            hops = row.per_op("hops")
            if row.case.variant is variant and hops > 0:
                hop_us[via] = (row.us_per_op - base.us_per_op) / hops
    if not hop_us:
        return None
    return Calibration(sqlite_statement_us=base.us_per_op, hop_us=hop_us)
