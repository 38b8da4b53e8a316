"""The chart of `bench http --plot`: requests/s and p99 against connections, per variant.

One column per engine, for POST /transfers and for the waits-elsewhere route; needs
matplotlib (the plot extra), checked before anything runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lab.bench.http.results import Key, Median
from lab.bench.http.scenarios import VARIANTS, Scenario

_PLOTTED = ("transfers", "waits-elsewhere")
# One colour per variant, the same in every panel.
_COLOURS = {"service": "#1f77b4", "batcher": "#ff7f0e", "sync": "#2ca02c", "memory": "#d62728"}


def write_plot(scenarios: Sequence[Scenario], found: dict[Key, Median], path: Path) -> None:
    """Draw the PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [s for s in scenarios if s.name in _PLOTTED]
    engines = sorted({e for s in shown for e in s.engines})
    panels = [(s, e) for s in shown for e in engines]
    if not panels:
        return
    figure, axes = plt.subplots(2, len(panels), figsize=(4.5 * len(panels), 7), squeeze=False)
    for column, (scenario, engine) in enumerate(panels):
        rate, tail = axes[0][column], axes[1][column]
        for variant in scenario.variants:
            steps = [s for s in scenario.steps if (scenario.name, engine, variant, s) in found]
            if not steps:
                continue
            medians = [found[(scenario.name, engine, variant, s)] for s in steps]
            label = VARIANTS[variant].label
            colour = _COLOURS.get(variant)
            rate.plot(steps, [m.rate for m in medians], marker="o", label=label, color=colour)
            tail.plot(steps, [m.p99 * 1e3 for m in medians], marker="o", label=label, color=colour)
        rate.set_title(f"{scenario.title[:40]}\n{engine}", fontsize=9)
        for axis in (rate, tail):
            axis.set_xscale("log")
            axis.set_xlabel("connections")
        tail.set_yscale("log")
        rate.set_ylabel("requests/s (median of reps)")
        tail.set_ylabel("p99 latency, ms")
        rate.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
