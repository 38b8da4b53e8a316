"""`bench http`'s tables (plain text and Markdown share one layout), ratios and goals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from lab.bench.http.results import Key, Median, Ratio
from lab.bench.http.scenarios import VARIANTS, Scenario

HEADER: Final = (
    "engine",
    "variant",
    "level",
    "req/s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "CPU ms/req",
    "peak RSS MB",
    "errors",
)


def _title(scenario: Scenario) -> str:
    if not scenario.overload:
        return scenario.title
    return f"{scenario.title} (meant to overload: {scenario.overload})"


def _rows(scenario: Scenario, found: dict[Key, Median]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    level = "pool" if scenario.pools else "conns"
    for engine in scenario.engines:
        for variant in scenario.variants:
            for step in scenario.steps:
                m = found.get((scenario.name, engine, variant, step))
                if m is None:
                    continue
                rows.append(
                    (
                        engine,
                        VARIANTS[variant].label,
                        f"{level} {step}",
                        f"{m.rate:,.0f}",
                        f"{m.p50 * 1e3:.1f}",
                        f"{m.p90 * 1e3:.1f}",
                        f"{m.p99 * 1e3:.1f}",
                        f"{m.cpu_per_request * 1e3:.2f}",
                        f"{m.peak_rss / 2**20:.0f}",
                        str(m.errors),
                    )
                )
    return rows


def text_tables(scenarios: Sequence[Scenario], found: dict[Key, Median]) -> str:
    """Every scenario's table in aligned columns."""
    parts = []
    for scenario in scenarios:
        rows = _rows(scenario, found)
        if not rows:
            continue
        widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
        lines = [f"== {_title(scenario)}"]
        for row in [HEADER, *rows]:
            cells = zip(row, widths, strict=True)
            lines.append(
                "  ".join(c.rjust(w) if i > 2 else c.ljust(w) for i, (c, w) in enumerate(cells))
            )
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def markdown_tables(scenarios: Sequence[Scenario], found: dict[Key, Median]) -> str:
    """Every scenario's table in Markdown."""
    parts = []
    for scenario in scenarios:
        rows = _rows(scenario, found)
        if not rows:
            continue
        rule = "|" + "|".join("---" if i < 3 else "---:" for i in range(len(HEADER))) + "|"
        lines = [f"**{_title(scenario)}**", "", "| " + " | ".join(HEADER) + " |", rule]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def ratio_lines(found: Sequence[Ratio]) -> list[str]:
    """One line per ratio: median and each repetition's."""
    lines = []
    for r in found:
        what = {"rss": "peak RSS", "per_cpu": "req per CPU second"}.get(r.spec.what, "req/s")
        reps = ", ".join(f"{v:.2f}" for v in r.per_rep)
        lines.append(
            f"{r.spec.scenario} @ {r.spec.step}, {r.engine}: {what} {r.spec.top} / "
            f"{r.spec.bottom} = {r.value:.2f}x (per repetition: {reps})"
        )
    return lines


@dataclass(frozen=True, slots=True)
class Goal:
    """One of the issue's goals and whether the run met it."""

    text: str
    measured: str
    met: bool


def goals(found: dict[Key, Median], ratio_list: Sequence[Ratio]) -> list[Goal]:
    """The goals of issue 22, for what the run measured."""

    def ratio(scenario: str, top: str, bottom: str, engine: str, what: str) -> float | None:
        for r in ratio_list:
            s = r.spec
            if (s.scenario, s.step, s.top, s.bottom, r.engine, s.what) == (
                scenario, 64 if scenario != "waits-elsewhere" else 400, top, bottom, engine, what
            ):  # fmt: skip
                return r.value
        return None

    result = []

    def at_least(text: str, value: float | None, floor: float) -> None:
        if value is not None:
            result.append(Goal(f"{text} >= {floor}x", f"{value:.2f}x", value >= floor))

    for engine in ("sqlite", "postgresql"):
        at = f"@64, {engine}"
        at_least(
            f"GET /accounts/{{id}} {at}: per server core, ours / async template",
            ratio("account", "service", "template-async", engine, "per_cpu"),
            3.0,
        )
        at_least(
            f"GET /accounts/{{id}} {at}: ours / in memory",
            ratio("account", "service", "memory", engine, "rate"),
            0.5,
        )
        at_least(
            f"POST /transfers {at}: batcher / in memory",
            ratio("transfers", "batcher", "memory", engine, "rate"),
            0.5,
        )
        at_least(
            f"POST /transfers {at}: per server core, batcher / async template",
            ratio("transfers", "batcher", "template-async", engine, "per_cpu"),
            3.0,
        )
        at_least(
            f"POST /transfers {at}: batcher / sync def",
            ratio("transfers", "batcher", "sync", engine, "rate"),
            1.0,
        )
        at_least(
            f"waits elsewhere @400, {engine}: async / sync def",
            ratio("waits-elsewhere", "batcher", "sync", engine, "rate"),
            4.0,
        )
        for scenario, variant in (("account", "service"), ("transfers", "batcher")):
            m = found.get((scenario, engine, variant, 64))
            if m is not None:
                result.append(
                    Goal(
                        f"fair tails, {scenario} {variant} {at}: p99 <= 3x p50, no errors",
                        f"p99 {m.p99 * 1e3:.1f} ms = {m.p99 / m.p50:.1f}x p50, errors {m.errors}",
                        m.p99 <= 3 * m.p50 and m.errors == 0,
                    )
                )
    return result
