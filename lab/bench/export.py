"""The JSON file: every figure of every run, with machine, versions and configuration."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from lab.bench.calibration import Calibration
from lab.bench.config import BenchConfig
from lab.bench.harness import Row, RunResult, WorkloadResult

# 2: latency_ms (p50, p99) per row and per run.
SCHEMA_VERSION = 2


def _finite(value: float) -> float | None:
    # JSON has no NaN or infinity; null says "not measurable" instead.
    return value if math.isfinite(value) else None


def run_dict(run: RunResult) -> dict[str, Any]:
    """One run."""
    return {
        "rep": run.rep,
        "attempted": run.attempted,
        "completed": run.completed,
        "seconds": run.seconds,
        "ops_per_s": run.ops_per_s,
        "statements": run.statements,
        "commits": run.commits,
        "hops": run.hops,
        "retries": run.retries,
        "latency_ms": {"p50": _finite(run.latency.p50_ms), "p99": _finite(run.latency.p99_ms)},
        "errors": run.errors,
        "check": dataclasses.asdict(run.check),
    }


def row_dict(row: Row, calibration: Calibration | None) -> dict[str, Any]:
    """One row: its summary and its runs."""
    share = calibration.hop_share(row) if calibration is not None else None
    return {
        "key": row.case.key,
        "variant": row.case.variant.key,
        "label": row.case.variant.label,
        "clients": row.case.clients,
        "pool": row.case.pool,
        "reference": row.case.reference,
        "unsafe": row.case.variant.unsafe,
        "ops_per_s": {"median": row.median, "min": row.low, "max": row.high},
        "ratio": {
            "median": _finite(row.ratio),
            "min": _finite(min(row.ratios)),
            "max": _finite(max(row.ratios)),
            "paired": [_finite(r) for r in row.ratios],
        },
        "us_per_op": _finite(row.us_per_op),
        "latency_ms": {"p50": _finite(row.p50_ms), "p99": _finite(row.p99_ms)},
        "per_op": {name: row.per_op(name) for name in ("statements", "commits", "hops", "retries")},
        "hop_share": share,
        "errors": dict(row.errors),
        "correct": row.correct,
        "verdict": row.verdict,
        "runs": [run_dict(run) for run in row.runs],
    }


def workload_dict(result: WorkloadResult, calibration: Calibration | None) -> dict[str, Any]:
    """One workload."""
    workload = result.workload
    return {
        "name": workload.name,
        "title": workload.title,
        "backend": workload.backend,
        "kind": str(workload.kind),
        "unit": workload.unit,
        "axis": workload.axis,
        "operations_per_run": result.size,
        "reps": result.reps,
        "seconds": result.seconds,
        "reference": result.reference.case.key,
        "rows": [row_dict(row, calibration) for row in result.rows],
    }


def document(
    *,
    config: BenchConfig,
    environment: dict[str, Any],
    results: list[WorkloadResult],
    skipped: dict[str, str],
    calibration: Calibration | None,
    started_at: str,
    seconds: float,
) -> dict[str, Any]:
    """The whole report as plain data."""
    return {
        "schema": SCHEMA_VERSION,
        "started_at": started_at,
        "seconds": seconds,
        **environment,
        "config": dataclasses.asdict(config),
        "calibration": None if calibration is None else dataclasses.asdict(calibration),
        "workloads": [workload_dict(result, calibration) for result in results],
        "skipped": [{"name": name, "reason": reason} for name, reason in skipped.items()],
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write `data` as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
