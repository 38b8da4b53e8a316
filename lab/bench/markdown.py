"""The results as Markdown tables (for docs), drawn from the same document as --json."""

from __future__ import annotations

from typing import Any

from lab.bench.report import millis, number, ratio


def _per_op(value: float) -> str:
    return f"{value:.1f}" if value else "0"


def _latency(row: dict[str, Any], percentile: str) -> str:
    # Runs saved before latency was measured have no latency_ms.
    value = (row.get("latency_ms") or {}).get(percentile)
    return "-" if value is None else millis(value)


def _row(row: dict[str, Any]) -> str:
    throughput = row["ops_per_s"]
    share = row["hop_share"]
    errors = sum(row["errors"].values())
    verdict = row["verdict"] if row["correct"] else f"**{row['verdict']}**"
    cells = [
        row["label"] + (" (ref)" if row["reference"] else ""),
        str(row["clients"]),
        str(row["pool"]),
        number(throughput["median"]),
        f"{number(throughput['min'])}-{number(throughput['max'])}",
        "n/a" if row["ratio"]["median"] is None else ratio(row["ratio"]["median"]),
        "n/a" if row["us_per_op"] is None else f"{row['us_per_op']:,.0f}",
        _latency(row, "p50"),
        _latency(row, "p99"),
        _per_op(row["per_op"]["statements"]),
        _per_op(row["per_op"]["commits"]),
        _per_op(row["per_op"]["hops"]),
        "-" if share is None else f"{share:.0%}",
        str(errors),
        verdict,
    ]
    return "| " + " | ".join(cells) + " |"


def render_markdown(data: dict[str, Any]) -> str:
    """A heading and a table per workload, then the hop calibration."""
    lines: list[str] = []
    for workload in data["workloads"]:
        lines += [
            f"#### {workload['title']}",
            "",
            f"{workload['operations_per_run']} operations per run, {workload['reps']} "
            f"repetitions; {workload['unit']}.",
            "",
            "| variant | clients | pool | median | min-max | vs ref | µs/op | p50 ms | p99 ms "
            "| stmts/op | commits/op | hops/op | in hops | errors | correct |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
            *(_row(row) for row in workload["rows"]),
            "",
        ]
    calibration = data.get("calibration")
    if calibration:
        hops = ", ".join(f"{via} {us:.0f} µs" for via, us in calibration["hop_us"].items())
        lines.append(
            f"One thread hop: {hops}; one `SELECT 1` in sqlite3: "
            f"{calibration['sqlite_statement_us']:.1f} µs."
        )
    for skipped in data.get("skipped", []):
        lines.append(f"Skipped {skipped['name']}: {skipped['reason']}.")
    return "\n".join(lines).rstrip() + "\n"
