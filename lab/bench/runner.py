"""The benchmark from start to finish: pick workloads, give each a database, run, report."""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, TextIO

from sqlalchemy.engine import make_url

from db import DatabaseSettings, create_engine, migrations
from lab.bench.calibration import Calibration, calibrate
from lab.bench.config import BenchConfig
from lab.bench.environment import describe
from lab.bench.errors import BenchError
from lab.bench.export import document, write_json
from lab.bench.harness import WorkloadResult, run_workload
from lab.bench.ledger_data import seed
from lab.bench.markdown import render_markdown
from lab.bench.plot import require_matplotlib, write_plot
from lab.bench.pooler import with_pgbouncer
from lab.bench.postgres import server_version, throwaway_database, unreachable_reason
from lab.bench.report import Progress, render_table
from lab.bench.targets import Target
from lab.bench.workloads import REGISTRY, WORKLOADS, Workload, WorkloadEnv
from lab.servers.pgbouncer import through


@dataclass(frozen=True, slots=True)
class Options:
    """A benchmark run: sizes, where to write results, whether to draw a progress bar."""

    config: BenchConfig
    json_path: Path | None = None
    plot_path: Path | None = None
    progress: bool | None = None  # None: only when stderr is a terminal
    markdown_path: Path | None = None
    from_json: Path | None = None  # render a saved run instead of running


def select_workloads(names: Sequence[str]) -> list[Workload]:
    """The named workloads in registry order; all of them when `names` is empty."""
    unknown = [name for name in names if name not in REGISTRY]
    if unknown:
        raise BenchError(
            f"unknown workload {', '.join(unknown)}; choose from {', '.join(REGISTRY)}"
        )
    return [w for w in WORKLOADS if not names or w.name in names]


async def postgres_skip_reason(config: BenchConfig, workloads: Sequence[Workload]) -> str | None:
    """Why the PostgreSQL workloads cannot run here, or None if they can."""
    if not config.postgres:
        return "PostgreSQL disabled with --no-postgres"
    missing = sorted(
        {m for w in workloads for m in w.requires if importlib.util.find_spec(m) is None}
    )
    if missing:
        return f"needs {', '.join(missing)}: pip install 'async-ledger[lab]'"
    reason = await unreachable_reason(config.postgres_url)
    if reason is not None:
        return f"PostgreSQL not reachable at {config.postgres_url} ({reason})"
    return None


@asynccontextmanager
async def workload_env(
    workload: Workload, config: BenchConfig, folder: Path
) -> AsyncIterator[WorkloadEnv]:
    """A fresh database for `workload`, migrated by db.migrations, seeded, then removed."""
    async with AsyncExitStack() as stack:
        if workload.backend == "sqlite":
            url = f"sqlite+aiosqlite:///{folder / f'{workload.name}.db'}"
        else:
            url = await stack.enter_async_context(throwaway_database(config.postgres_url))
        engine = create_engine(DatabaseSettings(url=url, pool_size=2, max_overflow=0))
        stack.push_async_callback(engine.dispose)
        await migrations.upgrade(engine)
        pooler = None
        if workload.uses_pgbouncer and config.pgbouncer_url is not None:
            address = make_url(config.pgbouncer_url)
            pooler = through(url, address.host or "127.0.0.1", address.port or 6432)
        env = WorkloadEnv(
            target=Target(url, pooler_url=pooler),
            engine=engine,
            ledger=await seed(engine, config.accounts),
        )
        await workload.setup(env, config)
        yield env


def write_outputs(options: Options, data: dict[str, Any], out: TextIO) -> None:
    """The files asked for: JSON, Markdown tables, PNG chart."""
    if options.json_path is not None and options.from_json is None:
        write_json(options.json_path, data)
        print(f"wrote {options.json_path}", file=out)
    if options.markdown_path is not None:
        options.markdown_path.parent.mkdir(parents=True, exist_ok=True)
        options.markdown_path.write_text(render_markdown(data), encoding="utf-8")
        print(f"wrote {options.markdown_path}", file=out)
    if options.plot_path is not None:
        write_plot(options.plot_path, data)
        print(f"wrote {options.plot_path}", file=out)


def rerender(options: Options, saved: Path, out: TextIO) -> int:
    """Write the Markdown and the chart of a run saved earlier with --json."""
    if options.plot_path is None and options.markdown_path is None:
        raise BenchError("--from-json renders a saved run: give --plot or --markdown too")
    try:
        data = json.loads(saved.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchError(f"cannot read {saved}: {exc}") from None
    write_outputs(options, data, out)
    return 0


async def run(options: Options, out: TextIO, err: TextIO) -> int:
    """Run the benchmark; 0 when every variant that is meant to be correct was."""
    if options.plot_path is not None:
        require_matplotlib()
    if options.from_json is not None:
        return rerender(options, options.from_json, out)
    selected = select_workloads(options.config.workloads)
    runnable = [w for w in selected if w.backend != "postgresql" or options.config.postgres]
    notes: list[str] = []
    async with with_pgbouncer(options.config, runnable, notes) as config:
        for note in notes:
            print(note, file=out)
        return await _run(replace(options, config=config), selected, out, err)


async def _run(options: Options, selected: list[Workload], out: TextIO, err: TextIO) -> int:
    config = options.config
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.perf_counter()

    skipped: dict[str, str] = {}
    postgres_version = None
    on_postgres = [w for w in selected if w.backend == "postgresql"]
    if on_postgres:
        reason = await postgres_skip_reason(config, on_postgres)
        if reason is None:
            postgres_version = await server_version(config.postgres_url)
        else:
            skipped = {w.name: reason for w in on_postgres}
    runnable = [w for w in selected if w.name not in skipped]
    for name, reason in skipped.items():
        print(f"{name}: skipped: {reason}", file=out)

    progress = Progress(
        total=sum(len(w.cases(config)) for w in runnable) * config.reps,
        stream=err,
        enabled=err.isatty() if options.progress is None else options.progress,
    )
    results: list[WorkloadResult] = []
    calibration: Calibration | None = None
    with TemporaryDirectory(prefix="ledger-bench-") as folder:
        for workload in runnable:
            async with workload_env(workload, config, Path(folder)) as env:
                result = await run_workload(workload, env, config, progress.step)
            progress.clear()
            if workload.name == "hops":
                calibration = calibrate(result)
            results.append(result)
            print(render_table(result, calibration) + "\n", file=out, flush=True)

    seconds = time.perf_counter() - started
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"benchmark finished in {seconds:.0f} s (load average now: {load})", file=out)
    data = document(
        config=config,
        environment=describe(postgres_version),
        results=results,
        skipped=skipped,
        calibration=calibration,
        started_at=started_at,
        seconds=seconds,
    )
    write_outputs(options, data, out)

    broken = [
        f"{result.workload.name}: {row.case.variant.label} ({row.case.clients} clients)"
        for result in results
        for row in result.rows
        if not row.case.variant.unsafe and (not row.correct or row.errors)
    ]
    if broken:
        print(
            f"bench: {len(broken)} rows that must be correct failed: {'; '.join(broken)}",
            file=err,
        )
        return 1
    return 0
