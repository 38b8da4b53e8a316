"""The PNG chart: throughput against concurrency (or pool size) per variant, log scale.

It draws from the same document that `--json` writes, so a saved run can be drawn again
(`--from-json`). matplotlib is an optional extra (`pip install 'async-ledger[plot]'`);
`require_matplotlib` is called before anything runs, so a missing install costs one line,
not a finished benchmark.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from lab.bench.errors import BenchError


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


# One colour, marker and line per variant, the same in every panel.
_STYLES: dict[str, tuple[str, str, str]] = {
    "sqlite3": ("#000000", "s", "-"),
    "psycopg": ("#000000", "s", "-"),
    "sqlalchemy-sync": ("#7f7f7f", "D", "-"),
    "to_thread-call": ("#ff7f0e", "v", "-"),
    "to_thread-tx": ("#bcbd22", "^", "-"),
    "aiosqlite": ("#1f77b4", "o", "-"),
    "asyncpg": ("#1f77b4", "o", "-"),
    "sqlalchemy-core-stock": ("#98df8a", "P", "-."),
    "sqlalchemy-core": ("#2ca02c", "P", "-"),
    "service-stock": ("#c5b0d5", "*", "-."),
    "service": ("#9467bd", "*", "-"),
    "batcher": ("#8c564b", "h", "-"),
    "naive-orm": ("#d62728", "X", "--"),
}
_REFERENCE_LABEL = "reference: the blocking driver, 1 client"


def _x(row: dict[str, Any], axis: str) -> int:
    return int(row["pool"] if axis == "pool" else row["clients"])


def _panels(data: dict[str, Any]) -> list[dict[str, Any]]:
    workloads: list[dict[str, Any]] = data["workloads"]
    return [w for w in workloads if len({_x(row, w["axis"]) for row in w["rows"]}) > 1] or workloads


def write_plot(path: Path, data: dict[str, Any]) -> None:
    """One panel per workload that has concurrent rows, a line per variant, one legend."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _panels(data)
    columns = 2 if panels else 1
    cells = len(panels) + 1  # the last cell holds the legend shared by every panel
    rows_count = math.ceil(cells / columns)
    figure, axes = plt.subplots(
        rows_count, columns, figsize=(7.5 * columns, 4.6 * rows_count), squeeze=False
    )
    legend: dict[str, Any] = {}
    for index, workload in enumerate(panels):
        ax = axes[index // columns][index % columns]
        axis = workload["axis"]
        lines: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in workload["rows"]:
            # On a pool axis the one-client rows would mix with the many-client ones; the
            # reference line stands for them.
            if axis == "pool" and row["clients"] == 1:
                continue
            lines[row["variant"]].append(row)
        for key, rows in lines.items():
            rows.sort(key=lambda r: _x(r, axis))
            color, marker, style = _STYLES.get(key, ("#17becf", "o", "-"))
            wrong = not all(r["correct"] for r in rows)
            label = rows[0]["label"] + (" (WRONG results)" if wrong else "")
            (line,) = ax.plot(
                [_x(r, axis) for r in rows],
                [r["ops_per_s"]["median"] for r in rows],
                style,
                color=color,
                marker=marker,
                label=label,
            )
            legend.setdefault(label, line)
        (reference,) = [row for row in workload["rows"] if row["reference"]]
        line = ax.axhline(reference["ops_per_s"]["median"], color="#555555", linestyle=":")
        legend.setdefault(_REFERENCE_LABEL, line)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        xs = sorted({_x(r, axis) for r in workload["rows"] if axis != "pool" or r["clients"] > 1})
        ax.set_xticks(xs, [str(x) for x in xs])
        if axis == "pool":
            clients = sorted({r["clients"] for r in workload["rows"] if r["clients"] > 1})
            ax.set_xlabel(f"pool size ({', '.join(map(str, clients))} concurrent clients)")
        else:
            ax.set_xlabel("concurrent clients")
        ax.set_ylabel(f"{workload['unit']} (log scale)")
        ax.set_title(workload["title"], fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    legend_ax = axes[len(panels) // columns][len(panels) % columns]
    legend_ax.axis("off")
    legend_ax.legend(list(legend.values()), list(legend.keys()), loc="center", fontsize=9)
    for index in range(cells, rows_count * columns):
        axes[index // columns][index % columns].set_visible(False)
    machine = data.get("machine", {})
    figure.suptitle(
        f"ledgerctl bench: {machine.get('cpus', '?')} CPUs, Python {machine.get('python', '?')}; "
        "medians of interleaved repetitions",
        fontsize=11,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
