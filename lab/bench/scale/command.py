"""`python -m lab.bench scale`: options, the run, and its Markdown tables."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final, TextIO

from db import DatabaseSettings, create_engine, create_session_factory, migrations
from lab.bench.config import DEFAULT_POSTGRES_URL
from lab.bench.errors import BenchError
from lab.bench.postgres import throwaway_database, unreachable_reason
from lab.bench.scale.loader import grow, open_ledger
from lab.bench.scale.measure import OPERATIONS, Loaded, SizeResult, measure, open_payers

SIZES: Final = (10_000, 100_000, 1_000_000)
PROBE: Final = Path(__file__).with_name("batcher_probe.py")
HERE: Final = Path(__file__).resolve().parents[3]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options only `bench scale` reads (it shares --json, --markdown, --postgres-url
    and --no-postgres)."""
    group = parser.add_argument_group("bench scale (per-request cost as the ledger grows)")
    group.add_argument(
        "--sizes",
        default=None,
        help="transfers per ledger, comma-separated (default 10000,100000,1000000)",
    )
    group.add_argument("--pg-sizes", default=None, help="PostgreSQL's sizes (default: --sizes)")
    group.add_argument("--calls", type=int, default=20, help="timed calls per operation")
    group.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="a source tree to compare the batched write path with, e.g. "
        "`git archive main | tar -x -C /tmp/base` (default: no comparison)",
    )
    group.add_argument("--write-transfers", type=int, default=3_000)
    group.add_argument("--write-clients", type=int, default=64)
    group.add_argument("--write-reps", type=int, default=3)


def _sizes(raw: str | None, default: tuple[int, ...]) -> tuple[int, ...]:
    if raw is None:
        return default
    try:
        sizes = tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise BenchError(f"sizes are whole numbers, got {raw!r}") from None
    if not sizes or min(sizes) < 100:
        raise BenchError("every size must be at least 100 transfers")
    return tuple(sorted(sizes))


@asynccontextmanager
async def _database(engine: str, admin_url: str, workdir: Path, name: str) -> AsyncIterator[str]:
    if engine == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / name}.db"
        return
    async with throwaway_database(admin_url) as url:
        yield url


async def _scale(
    engine: str, admin_url: str, workdir: Path, sizes: tuple[int, ...], calls: int, err: TextIO
) -> list[SizeResult]:
    """A database per size, all loaded first, then measured together (`measure`)."""
    async with AsyncExitStack() as stack:
        ledgers = []
        for size in sizes:
            url = await stack.enter_async_context(
                _database(engine, admin_url, workdir, f"scale-{size}")
            )
            database = create_engine(DatabaseSettings(url=url))
            stack.push_async_callback(database.dispose)
            await migrations.upgrade(database)
            sessions = create_session_factory(database)
            ledger = await open_ledger(sessions)
            payers = await open_payers(sessions)
            err.write(f"scale: {engine}: loading {size:,} transfers\n")
            await grow(database, ledger, size, random.Random(24))
            ledgers.append(Loaded(size, sessions, ledger, payers))
        err.write(f"scale: {engine}: measuring\n")
        results = await measure(engine, ledgers, calls)
    for result in results:
        if not result.audit_ok:
            raise BenchError(f"{engine} at {result.size}: the audit failed on the loaded ledger")
    return results


async def _probe(tree: Path, url: str, transfers: int, clients: int) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PROBE),
        url,
        str(transfers),
        str(clients),
        cwd=tree,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, errors = await process.communicate()
    if process.returncode != 0:
        raise BenchError(f"the write probe failed in {tree}: {errors.decode()[-500:]}")
    found = json.loads(out)
    return float(found["transfers_per_s"]), float(found["cpu_us_per_transfer"])


async def _write_path(
    engine: str, admin_url: str, workdir: Path, baseline: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Baseline and this tree alternately, `--write-reps` times each, fresh databases."""
    rates: dict[str, list[float]] = {"baseline": [], "kept totals": []}
    cpu: dict[str, list[float]] = {"baseline": [], "kept totals": []}
    for rep in range(args.write_reps):
        for label, tree in (("baseline", baseline), ("kept totals", HERE)):
            async with _database(engine, admin_url, workdir, f"write-{label[0]}{rep}") as url:
                rate, cpu_us = await _probe(tree, url, args.write_transfers, args.write_clients)
                rates[label].append(rate)
                cpu[label].append(cpu_us)
    base, kept = (statistics.median(rates[k]) for k in ("baseline", "kept totals"))
    base_cpu, kept_cpu = (statistics.median(cpu[k]) for k in ("baseline", "kept totals"))
    return {
        "engine": engine,
        "baseline": base,
        "kept": kept,
        "ratio": kept / base,
        "baseline_cpu_us": base_cpu,
        "kept_cpu_us": kept_cpu,
        "cpu_ratio": base_cpu / kept_cpu,
        "rates": rates,
        "cpu_us": cpu,
    }


def markdown(
    results: list[SizeResult], writes: list[dict[str, Any]], args: argparse.Namespace
) -> str:
    """The run's tables."""
    lines: list[str] = []
    for engine in dict.fromkeys(r.engine for r in results):
        rows = [r for r in results if r.engine == engine]
        sizes = [f"{r.size:,}" for r in rows]
        lines += [
            f"**{engine}**: median ms of {args.calls} calls per operation, "
            "by transfers in the ledger",
            "",
            f"| operation | {' | '.join(sizes)} | largest / smallest |",
            f"|---|{'--:|' * len(rows)}--:|",
        ]
        for op in OPERATIONS:
            values = [r.median_ms[op] for r in rows]
            cells = " | ".join(f"{v:.2f}" for v in values)
            lines.append(f"| {op} | {cells} | {values[-1] / values[0]:.2f}x |")
        lines += [
            "",
            "| the audit | " + " | ".join(sizes) + " |",
            f"|---|{'--:|' * len(rows)}",
            "| seconds | " + " | ".join(f"{r.audit_seconds:.2f}" for r in rows) + " |",
            "| transfers/s | " + " | ".join(f"{r.audit_rows_per_s:,.0f}" for r in rows) + " |",
            "| peak MiB (tracemalloc) | "
            + " | ".join(f"{r.audit_peak_mib:.2f}" for r in rows)
            + " |",
            "",
        ]
    if writes:
        lines += [
            f"Batched write path ({args.write_transfers:,} transfers from {args.write_clients} "
            f"tasks through one TransferBatcher, median of {args.write_reps} alternating runs):",
            "",
            "| engine | baseline transfers/s | with kept totals | ratio "
            "| baseline CPU µs/transfer | with kept totals | ratio (baseline / kept) |",
            "|---|--:|--:|--:|--:|--:|--:|",
        ]
        lines += [
            f"| {w['engine']} | {w['baseline']:,.0f} | {w['kept']:,.0f} | {w['ratio']:.2f}x "
            f"| {w['baseline_cpu_us']:.0f} | {w['kept_cpu_us']:.0f} | {w['cpu_ratio']:.2f}x |"
            for w in writes
        ]
        lines.append("")
    return "\n".join(lines)


async def run_from_args(args: argparse.Namespace) -> int:
    """Run `bench scale`; the exit code."""
    sizes = _sizes(args.sizes, SIZES)
    pg_sizes = _sizes(args.pg_sizes, sizes)
    admin_url = args.postgres_url or os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    engines = ["sqlite"]
    if not args.no_postgres:
        reason = await unreachable_reason(admin_url)
        if reason is None:
            engines.append("postgresql")
        else:
            sys.stderr.write(f"scale: PostgreSQL skipped: {reason}\n")
    results: list[SizeResult] = []
    writes: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ledger-scale-") as temp:
        workdir = Path(temp)
        for engine in engines:
            chosen = sizes if engine == "sqlite" else pg_sizes
            results += await _scale(engine, admin_url, workdir, chosen, args.calls, sys.stderr)
            if args.baseline is not None:
                sys.stderr.write(f"scale: {engine}: write path against {args.baseline}\n")
                writes.append(await _write_path(engine, admin_url, workdir, args.baseline, args))
    text = markdown(results, writes, args)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        payload = {"sizes": [asdict(r) for r in results], "write_path": writes}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0
