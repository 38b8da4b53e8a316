"""The PNG chart: throughput against concurrency (or pool size) per variant, log scale.

matplotlib is an optional extra (`pip install 'async-ledger[plot]'`); `require_matplotlib`
is called before anything runs, so a missing install is one line, not a lost benchmark.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from bench.errors import BenchError
from bench.harness import Row, WorkloadResult


class PlotUnavailable(BenchError):
    """--plot was asked for but matplotlib is not installed."""


def require_matplotlib() -> None:
    """Raise PlotUnavailable unless matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotUnavailable(
            "--plot needs matplotlib: pip install 'async-ledger[plot]' (or pip install matplotlib)"
        ) from None


# One colour and marker per variant, the same in every panel.
_STYLES = {
    "sqlite3": ("#000000", "s"),
    "psycopg": ("#000000", "s"),
    "sqlalchemy-sync": ("#7f7f7f", "D"),
    "to_thread-call": ("#ff7f0e", "v"),
    "to_thread-tx": ("#bcbd22", "^"),
    "aiosqlite": ("#1f77b4", "o"),
    "asyncpg": ("#1f77b4", "o"),
    "sqlalchemy-core": ("#2ca02c", "P"),
    "service": ("#9467bd", "*"),
    "naive-orm": ("#d62728", "X"),
}


def _style(key: str) -> tuple[str, str]:
    return _STYLES.get(key, ("#17becf", "o"))


def _x(row: Row, axis: str) -> int:
    return row.case.pool if axis == "pool" else row.case.clients


def write_plot(path: Path, results: list[WorkloadResult]) -> None:
    """One panel per workload that has concurrent rows; a line per variant."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [r for r in results if len({_x(row, r.workload.axis) for row in r.rows}) > 1]
    if not panels:
        panels = results
    columns = 2 if len(panels) > 1 else 1
    rows_count = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(
        rows_count, columns, figsize=(7.5 * columns, 4.8 * rows_count), squeeze=False
    )
    for index, result in enumerate(panels):
        ax = axes[index // columns][index % columns]
        axis = result.workload.axis
        lines: defaultdict[str, list[Row]] = defaultdict(list)
        for row in result.rows:
            # Sequential rows belong on a clients axis; on a pool axis they would mix
            # one client with many, so they are left to the reference line.
            if axis == "pool" and row.case.clients == 1:
                continue
            lines[row.case.variant.key].append(row)
        for key, rows in lines.items():
            rows.sort(key=lambda r: _x(r, axis))
            variant = rows[0].case.variant
            color, marker = _style(key)
            ax.plot(
                [_x(r, axis) for r in rows],
                [r.median for r in rows],
                "--" if variant.unsafe else "-",
                color=color,
                marker=marker,
                label=variant.label + ("" if all(r.correct for r in rows) else " (WRONG results)"),
            )
        reference = result.reference
        ax.axhline(
            reference.median,
            color="#555555",
            linestyle=":",
            label=f"{reference.case.variant.label}, 1 client (reference)",
        )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        xs = sorted({_x(r, axis) for r in result.rows if axis != "pool" or r.case.clients > 1})
        ax.set_xticks(xs, [str(x) for x in xs])
        clients = {r.case.clients for r in result.rows if r.case.clients > 1}
        xlabel = (
            "pool size" + (f" ({', '.join(map(str, sorted(clients)))} clients)" if clients else "")
            if axis == "pool"
            else "concurrent clients"
        )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{result.workload.unit} (log)")
        ax.set_title(result.workload.title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for index in range(len(panels), rows_count * columns):
        axes[index // columns][index % columns].set_visible(False)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
