"""`bench http` from start to finish: databases, servers, wrk runs, audits, report.

Repetitions are interleaved (every scenario and variant once, then again) and the
variant order rotates between repetitions, so a noisy minute on the shared machine does
not land on one variant only. Each (scenario, engine, variant) gets its own server
process, warmed up untimed, then measured at each level; after every wrk run the ledger
is audited.
"""

from __future__ import annotations

import json
import resource
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, TextIO

from sqlalchemy.exc import DBAPIError

from lab.bench.environment import describe
from lab.bench.errors import BenchError
from lab.bench.http import procstat
from lab.bench.http import profile as profiling
from lab.bench.http.ledger import Ledger, audit, prepare
from lab.bench.http.probe import probe
from lab.bench.http.report import goals, markdown_tables, ratio_lines, text_tables
from lab.bench.http.results import Point, medians, ratios
from lab.bench.http.scenarios import VARIANTS, Engine, Scenario
from lab.bench.http.server import serve
from lab.bench.http.wrk import find_wrk, lua_script, run_wrk
from lab.bench.postgres import server_version, throwaway_database, unreachable_reason

# Enough users that 256 connections do not all queue on the same few account rows.
USERS = 64
WARMUP_CONNECTIONS = 8


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """What `bench http` runs and where it writes."""

    scenarios: tuple[Scenario, ...]
    reps: int = 3
    seconds: float = 3.0
    warmup: float = 1.0
    postgres_url: str | None = None  # the admin URL of a server; None: SQLite only
    # Databases to use as they are (already empty), instead of making throw-away ones.
    databases: dict[Engine, str] = field(default_factory=dict)
    json_path: Path | None = None
    markdown_path: Path | None = None
    plot_path: Path | None = None
    # One server process for every scenario with the same settings (the quick form).
    share: bool = False
    # Sample each measured run with py-spy and report the CPU per request by layer.
    profile: bool = False


@dataclass(frozen=True, slots=True)
class HttpRun:
    """Every point of a run, and whether each audit and probe held."""

    points: list[Point]
    failures: list[str]
    profiles: list[profiling.Profile] = field(default_factory=list)


def _raise_file_limit() -> None:
    # A thousand connections on each side: wrk and the server inherit this limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@asynccontextmanager
async def _databases(
    options: HttpOptions, engines: set[Engine]
) -> AsyncIterator[dict[Engine, str]]:
    async with AsyncExitStack() as stack:
        found: dict[Engine, str] = {}
        for engine in sorted(engines):
            if engine in options.databases:
                found[engine] = options.databases[engine]
            elif engine == "sqlite":
                folder = stack.enter_context(TemporaryDirectory(prefix="bench-http-"))
                found[engine] = f"sqlite+aiosqlite:///{folder}/ledger.db"
            elif options.postgres_url is not None:
                found[engine] = await stack.enter_async_context(
                    throwaway_database(options.postgres_url)
                )
        yield found


@dataclass(frozen=True, slots=True)
class Job:
    """A scenario's steps on one server."""

    scenario: Scenario
    steps: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Serving:
    """One server process and the jobs it runs, in order."""

    engine: Engine
    variant: str
    env: tuple[tuple[str, str], ...]
    jobs: tuple[Job, ...]


def plan(
    scenarios: Sequence[Scenario], engines: set[Engine], rep: int, *, share: bool
) -> list[Serving]:
    """The servers of one repetition, variants rotated by `rep`.

    Each (scenario, engine, variant) gets a fresh process, and so does each pool size of
    a pool scenario and each level of a `fresh_per_step` one; with `share`, one process
    serves every scenario that needs the same settings (the quick form, which checks
    the answers, not the speed).
    """
    servings: list[Serving] = []
    for scenario in scenarios:
        for engine in scenario.engines:
            if engine not in engines:
                continue
            turn = (rep - 1) % len(scenario.variants)
            for variant in scenario.variants[turn:] + scenario.variants[:turn]:
                singles = scenario.pools or (scenario.levels if scenario.fresh_per_step else ())
                groups: list[tuple[int, ...]] = [(s,) for s in singles] or [scenario.levels]
                for steps in groups:
                    env = tuple(sorted(_server_env(scenario, variant, steps[0]).items()))
                    job = Job(scenario, steps)
                    same = [
                        i
                        for i, s in enumerate(servings)
                        if share and (s.engine, s.variant, s.env) == (engine, variant, env)
                    ]
                    if same:
                        old = servings[same[0]]
                        servings[same[0]] = Serving(engine, variant, env, (*old.jobs, job))
                    else:
                        servings.append(Serving(engine, variant, env, (job,)))
    return servings


def _server_env(scenario: Scenario, variant: str, step: int) -> dict[str, str]:
    env = {
        # Queued requests wait: an overloaded scenario shows as latency, not as 504s.
        "API_REQUEST_TIMEOUT": "60",
        "DB_POOL_TIMEOUT": "60",
    }
    if scenario.pools:
        env |= {"DB_POOL_SIZE": str(step), "DB_MAX_OVERFLOW": "0", "BENCH_HTTP_THREADS": str(step)}
    elif scenario.threads is not None and variant == "sync":
        env["BENCH_HTTP_THREADS"] = str(scenario.threads)
    return env


@dataclass(slots=True)
class _Context:
    wrk: str
    server_cpu: int | None
    wrk_cpu: int | None
    options: HttpOptions
    work: Path
    out: TextIO


async def _one_run(
    context: _Context,
    serving: Serving,
    scenario: Scenario,
    step: int,
    first: bool,
    ledger: Ledger,
    pid: int,
    url: str,
    rep: int,
) -> HttpRun:
    connections = scenario.connections_at(step)
    variant = serving.variant
    run_id = f"{scenario.name}-{serving.engine[:2]}-{variant}-r{rep}-s{step}-{secrets.token_hex(3)}"

    def script(name: str) -> Path:
        path = context.work / f"{name}.lua"
        path.write_text(
            lua_script(scenario.request, ledger.tokens, ledger.accounts, ledger.destinations, name)
        )
        return path

    if first and context.options.warmup > 0:
        # Few connections: what a warm-up leaves in flight is gone before the timed run.
        await run_wrk(
            context.wrk,
            url,
            script(f"warm-{run_id}"),
            connections=min(connections, WARMUP_CONNECTIONS),
            seconds=context.options.warmup,
            cpu=context.wrk_cpu,
        )
    measured = script(run_id)
    sampled = context.work / f"{run_id}.spy"
    sampling = (
        await profiling.record(
            profiling.py_spy(), pid, context.options.seconds * scenario.slow_factor, sampled
        )
        if context.options.profile
        else None
    )
    before = procstat.usage(pid)
    result = await run_wrk(
        context.wrk,
        url,
        measured,
        connections=connections,
        seconds=context.options.seconds * scenario.slow_factor,
        cpu=context.wrk_cpu,
    )
    after = procstat.usage(pid)
    if sampling is not None:
        await sampling
    checked = await audit(ledger.url, run_id)
    keyed = checked.keyed_transfers if scenario.writes and variant != "memory" else None
    point = Point(
        scenario.name,
        serving.engine,
        variant,
        step,
        connections,
        rep,
        result,
        after.cpu_seconds - before.cpu_seconds,
        after.peak_rss,
        checked.problems,
        keyed,
    )
    failures = []
    where = f"{scenario.name} {serving.engine} {variant} step {step} rep {rep}"
    if not checked.ok:
        failures.append(f"{where}: audit: {'; '.join(checked.problems)}")
    answered = result.requests - result.non_2xx
    # Every 201 is a committed transfer; the surplus is at most what was in flight.
    if keyed is not None and not answered <= keyed <= result.requests + connections:
        failures.append(f"{where}: {answered} answered 201 but {keyed} transfers stored")
    print(
        f"  {where}: {result.rate:,.0f} req/s, p99 {result.p99 * 1e3:.1f} ms, "
        f"CPU {point.cpu_per_request * 1e3:.2f} ms/req, errors {point.errors}, "
        f"audit {'ok' if checked.ok else 'FAILED'}",
        file=context.out,
        flush=True,
    )
    profiles = []
    if sampling is not None:
        samples = profiling.layers(sampled.read_text())
        profiles.append(
            profiling.Profile(
                scenario.name, serving.engine, variant, step, dict(samples), point.cpu_per_request
            )
        )
    return HttpRun([point], failures, profiles)


async def _serve_jobs(context: _Context, serving: Serving, ledger: Ledger, rep: int) -> HttpRun:
    env = {**dict(serving.env), "DATABASE_URL": ledger.url}
    factory = VARIANTS[serving.variant].factory
    log = context.work / "server.log"
    points: list[Point] = []
    failures: list[str] = []
    profiles: list[profiling.Profile] = []
    async with serve(factory, env, log, cpu=context.server_cpu) as server:
        for job in serving.jobs:
            # The memory variant keeps no rows, so it has no replay to give.
            replays = serving.variant != "memory"
            await probe(server.url, job.scenario.request, ledger, replays=replays)
            for n, step in enumerate(job.steps):
                run = await _one_run(
                    context, serving, job.scenario, step, n == 0, ledger, server.pid,
                    server.url + "/", rep,
                )  # fmt: skip
                points += run.points
                failures += run.failures
                profiles += run.profiles
    return HttpRun(points, failures, profiles)


async def execute(options: HttpOptions, out: TextIO) -> HttpRun:
    """Run every scenario; the points and the failures (audit, stored transfers)."""
    wrk = find_wrk()
    _raise_file_limit()
    engines = {e for s in options.scenarios for e in s.engines}
    if "postgresql" in engines and "postgresql" not in options.databases:
        reason = (
            None if options.postgres_url is None else await unreachable_reason(options.postgres_url)
        )
        if options.postgres_url is None or reason is not None:
            print(f"PostgreSQL scenarios skipped: {reason or 'no server given'}", file=out)
            engines.discard("postgresql")
    pins = procstat.pinning()
    if pins is None:
        print("not pinned: fewer than 2 cores, or no taskset", file=out, flush=True)
    else:
        print(
            f"pinned with taskset: server on CPU {pins[0]}, wrk on CPU {pins[1]} "
            "(the database and this process are not pinned)",
            file=out,
            flush=True,
        )
    points: list[Point] = []
    failures: list[str] = []
    profiles: list[profiling.Profile] = []
    if options.profile:
        profiling.py_spy()  # not installed: say so before anything runs
    async with _databases(options, engines) as urls:
        ledgers = {engine: await prepare(url, USERS) for engine, url in urls.items()}
        with TemporaryDirectory(prefix="bench-http-run-") as folder:
            context = _Context(
                wrk,
                None if pins is None else pins[0],
                None if pins is None else pins[1],
                options,
                Path(folder),
                out,
            )
            for rep in range(1, options.reps + 1):
                for serving in plan(options.scenarios, set(ledgers), rep, share=options.share):
                    try:
                        run = await _serve_jobs(context, serving, ledgers[serving.engine], rep)
                    except (BenchError, DBAPIError) as exc:
                        # One server that would not start or answer: the others still run.
                        where = f"{serving.engine} {serving.variant} rep {rep}"
                        print(f"  {where}: FAILED: {str(exc).splitlines()[0]}", file=out)
                        failures.append(f"{where}: {str(exc).splitlines()[0]}")
                        continue
                    points += run.points
                    failures += run.failures
                    profiles += run.profiles
    return HttpRun(points, failures, profiles)


async def run_http(options: HttpOptions, out: TextIO) -> int:
    """The whole command: run, print the tables, write what was asked; the exit code."""
    if options.plot_path is not None:
        from lab.bench.plot import require_matplotlib

        require_matplotlib()
    began = datetime.now(UTC)
    run = await execute(options, out)
    found = medians(run.points)
    paired = ratios(run.points)
    print("\n" + text_tables(options.scenarios, found), file=out)
    lines = ratio_lines(paired)
    if lines:  # the ratios pair full-run levels (64, 400, 1,000): a --quick run has none
        print("\nratios (median of the ratios within each repetition):", file=out)
        for line in lines:
            print("  " + line, file=out)
    met = goals(found, paired)
    if met:
        print("\ngoals of issue 22:", file=out)
        for goal in met:
            print(f"  {'met   ' if goal.met else 'MISSED'} {goal.text}: {goal.measured}", file=out)
    layer_table = profiling.table(run.profiles)
    if layer_table:
        print(
            "\nCPU per request by layer (µs, share of py-spy samples times the CPU measured):",
            file=out,
        )
        print(layer_table, file=out)
    for failure in run.failures:
        print(f"FAILED {failure}", file=out)
    document: dict[str, Any] = {
        "started": began.isoformat(),
        "seconds_per_run": options.seconds,
        "reps": options.reps,
        "pinned": procstat.pinning(),
        **describe(None),
        "points": [p.as_json() for p in run.points],
        "ratios": [
            {
                "scenario": r.spec.scenario,
                "step": r.spec.step,
                "top": r.spec.top,
                "bottom": r.spec.bottom,
                "what": r.spec.what,
                "engine": r.engine,
                "median": r.value,
                "per_rep": r.per_rep,
            }
            for r in paired
        ],
        "goals": [{"goal": g.text, "measured": g.measured, "met": g.met} for g in met],
        "failures": run.failures,
    }
    if options.postgres_url is not None and any(p.engine == "postgresql" for p in run.points):
        document["versions"]["postgresql"] = await server_version(options.postgres_url)
    if options.json_path is not None:
        options.json_path.write_text(json.dumps(document, indent=2) + "\n")
    if options.markdown_path is not None:
        lines = ratio_lines(paired)
        options.markdown_path.write_text(
            markdown_tables(options.scenarios, found)
            + "\n\nRatios:\n\n"
            + "\n".join(f"- {line}" for line in lines)
            + "\n"
            + (f"\nCPU per request by layer (µs):\n\n{layer_table}\n" if layer_table else "")
        )
    if options.plot_path is not None:
        from lab.bench.http.plot import write_plot

        write_plot(options.scenarios, found, options.plot_path)
    if not run.points:
        raise BenchError("nothing was measured")
    return 1 if run.failures else 0
