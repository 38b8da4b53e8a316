"""Figures of `bench http`: one point per wrk run, medians over repetitions, paired ratios."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Final

from lab.bench.http.wrk import WrkResult

Key = tuple[str, str, str, int]  # scenario, engine, variant, step


@dataclass(frozen=True, slots=True)
class Point:
    """One measured run of one server at one level, with the audit that followed it."""

    scenario: str
    engine: str
    variant: str
    step: int
    connections: int
    rep: int
    wrk: WrkResult
    cpu_seconds: float
    peak_rss: int
    audit_problems: tuple[str, ...]
    keyed_transfers: int | None  # transfers carrying the run's keys; None: not a write

    @property
    def key(self) -> Key:
        """What the repetitions of this point share."""
        return (self.scenario, self.engine, self.variant, self.step)

    @property
    def cpu_per_request(self) -> float:
        """Server CPU seconds per answered request."""
        return self.cpu_seconds / self.wrk.requests if self.wrk.requests else 0.0

    @property
    def errors(self) -> int:
        """Non-2xx answers and socket errors."""
        return self.wrk.non_2xx + self.wrk.socket_errors

    def as_json(self) -> dict[str, Any]:
        """The point as plain JSON values."""
        raw = asdict(self)
        raw["rate"] = self.wrk.rate
        raw["cpu_per_request"] = self.cpu_per_request
        return raw


@dataclass(frozen=True, slots=True)
class Median:
    """The median of a point's repetitions (errors: the sum)."""

    rate: float
    p50: float
    p90: float
    p99: float
    cpu_per_request: float
    peak_rss: int
    errors: int
    reps: int


def medians(points: Iterable[Point]) -> dict[Key, Median]:
    """Each point's median over its repetitions."""
    grouped: dict[Key, list[Point]] = defaultdict(list)
    for point in points:
        grouped[point.key].append(point)

    def mid(values: list[Point], get: Callable[[Point], float]) -> float:
        return statistics.median(get(p) for p in values)

    return {
        key: Median(
            rate=mid(runs, lambda p: p.wrk.rate),
            p50=mid(runs, lambda p: p.wrk.p50),
            p90=mid(runs, lambda p: p.wrk.p90),
            p99=mid(runs, lambda p: p.wrk.p99),
            cpu_per_request=mid(runs, lambda p: p.cpu_per_request),
            peak_rss=int(mid(runs, lambda p: p.peak_rss)),
            errors=sum(p.errors for p in runs),
            reps=len(runs),
        )
        for key, runs in grouped.items()
    }


@dataclass(frozen=True, slots=True)
class RatioSpec:
    """`top` over `bottom` (variants) at one scenario and step, of `what`: rate (req/s),
    per_cpu (requests per second of server CPU: throughput per server core), or rss."""

    scenario: str
    step: int
    top: str
    bottom: str
    what: str = "rate"


RATIOS: Final = (
    RatioSpec("transfers", 64, "batcher", "memory"),
    RatioSpec("transfers", 64, "batcher", "service"),
    RatioSpec("transfers", 64, "batcher", "sync"),
    RatioSpec("transfers", 256, "batcher", "sync"),
    RatioSpec("transfers", 64, "batcher", "template-async"),
    RatioSpec("transfers", 64, "batcher", "template-async", "per_cpu"),
    RatioSpec("transfers", 64, "batcher", "template-sync"),
    RatioSpec("account", 64, "service", "sync"),
    RatioSpec("account", 64, "service", "memory"),
    RatioSpec("account", 64, "service", "template-async"),
    RatioSpec("account", 64, "service", "template-async", "per_cpu"),
    RatioSpec("account", 64, "service", "template-sync"),
    RatioSpec("waits-elsewhere", 100, "batcher", "sync"),
    RatioSpec("waits-elsewhere", 400, "batcher", "sync"),
    RatioSpec("waits-elsewhere", 1000, "batcher", "sync"),
    RatioSpec("memory-cost", 1000, "batcher", "sync"),
    RatioSpec("memory-cost", 1000, "sync", "batcher", "rss"),
    RatioSpec("waits-in-db", 5, "batcher", "sync"),
    RatioSpec("waits-in-db", 50, "batcher", "sync"),
)


@dataclass(frozen=True, slots=True)
class Ratio:
    """A ratio's median over repetitions, each taken within one repetition."""

    spec: RatioSpec
    engine: str
    value: float
    per_rep: tuple[float, ...]


def _pair(what: str, top: Point, bottom: Point) -> tuple[float, float]:
    if what == "rate":
        return top.wrk.rate, bottom.wrk.rate
    if what == "per_cpu":
        # Requests per CPU second: 1 / (CPU per request); 0 for a run that answered none.
        def per_cpu(p: Point) -> float:
            return 1 / p.cpu_per_request if p.cpu_per_request else 0.0

        return per_cpu(top), per_cpu(bottom)
    return float(top.peak_rss), float(bottom.peak_rss)


def ratios(points: Iterable[Point]) -> list[Ratio]:
    """Every RATIOS entry the points allow, per engine."""
    by: dict[tuple[str, str, str, int, int], Point] = {
        (p.scenario, p.engine, p.variant, p.step, p.rep): p for p in points
    }
    engines = sorted({k[1] for k in by})
    reps = sorted({k[4] for k in by})
    found: list[Ratio] = []
    for spec in RATIOS:
        for engine in engines:
            values = []
            for rep in reps:
                top = by.get((spec.scenario, engine, spec.top, spec.step, rep))
                bottom = by.get((spec.scenario, engine, spec.bottom, spec.step, rep))
                if top is None or bottom is None:
                    continue
                a, b = _pair(spec.what, top, bottom)
                if b > 0:
                    values.append(a / b)
            if values:
                found.append(Ratio(spec, engine, statistics.median(values), tuple(values)))
    return found
