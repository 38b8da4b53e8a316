"""The command line of `python -m lab.bench` and `python -m lab.bench` (both use this module)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from lab.bench.config import DEFAULT_BROKER_URL, DEFAULT_POSTGRES_URL, FULL, QUICK
from lab.bench.errors import BenchError
from lab.bench.runner import Options, run
from lab.bench.workloads import REGISTRY

EXIT_ERROR = 1


def _count(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _counts(raw: str) -> tuple[int, ...]:
    return tuple(_count(part) for part in raw.split(",") if part.strip())


def _names(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options to `parser` (its own, or ledgerctl's `bench` subcommand)."""
    full = FULL
    parser.add_argument(
        "suite",
        nargs="?",
        choices=("http", "scale"),
        help="http: real servers under wrk (docs/benchmarks.md); scale: per-request cost as "
        "the ledger grows; default: the database benchmark",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes for a smoke run (under ~60 s)"
    )
    parser.add_argument(
        "--workloads",
        type=_names,
        default=None,
        help=f"comma-separated, from: {', '.join(REGISTRY)} (default: all)",
    )
    parser.add_argument("--reps", type=_count, help=f"repetitions (default {full.reps})")
    parser.add_argument(
        "--accounts", type=_count, help=f"accounts in the ledger (default {full.accounts})"
    )
    sizes = parser.add_argument_group("sizes (defaults: the full run; --quick makes them small)")
    sizes.add_argument("--hop-ops", type=_count, help=f"SELECT 1 per run ({full.hop_ops})")
    sizes.add_argument(
        "--transfer-ops", type=_count, help=f"SQLite transfers per run ({full.transfer_ops})"
    )
    sizes.add_argument(
        "--clients",
        type=_counts,
        help=f"SQLite transfer concurrency levels ({','.join(map(str, full.clients))})",
    )
    sizes.add_argument("--pool", type=_count, help=f"SQLite transfer pool size ({full.pool})")
    sizes.add_argument("--read-ops", type=_count, help=f"SQLite reads per run ({full.read_ops})")
    sizes.add_argument(
        "--read-clients", type=_count, help=f"concurrent readers ({full.read_clients})"
    )
    sizes.add_argument(
        "--read-pools",
        type=_counts,
        help=f"read pool sizes ({','.join(map(str, full.read_pools))})",
    )
    sizes.add_argument(
        "--pg-transfer-ops",
        type=_count,
        help=f"PostgreSQL transfers per run ({full.pg_transfer_ops})",
    )
    sizes.add_argument(
        "--pg-clients",
        type=_counts,
        help=f"PostgreSQL transfer concurrency levels ({','.join(map(str, full.pg_clients))})",
    )
    sizes.add_argument("--pg-pool", type=_count, help=f"PostgreSQL pool size ({full.pg_pool})")
    sizes.add_argument(
        "--latency-ops", type=_count, help=f"latency-bound requests per run ({full.latency_ops})"
    )
    sizes.add_argument(
        "--latency-clients",
        type=_count,
        help=f"latency-bound clients ({full.latency_clients})",
    )
    sizes.add_argument(
        "--latency-pools",
        type=_counts,
        help=f"latency-bound pool sizes ({','.join(map(str, full.latency_pools))})",
    )
    sizes.add_argument(
        "--job-ops", type=_count, help=f"jobs drained per run, per engine ({full.job_ops})"
    )
    sizes.add_argument(
        "--event-ops",
        type=_count,
        help=f"events per run of the pg-events workloads ({full.event_ops})",
    )
    sizes.add_argument("--seed", type=int, help=f"random seed of the plans ({full.seed})")
    parser.add_argument(
        "--broker-url",
        default=os.environ.get("BROKER_URL", DEFAULT_BROKER_URL),
        help="RabbitMQ for the pg-events workloads (default: BROKER_URL, else guest@127.0.0.1)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="server for the PostgreSQL workloads; a throw-away database is created there "
        "and dropped (default: $BENCH_POSTGRES_URL or %(default)s)",
    )
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL workloads")
    parser.add_argument(
        "--pgbouncer-url",
        default=os.environ.get("BENCH_PGBOUNCER_URL") or None,
        help="a PgBouncer in transaction mode in front of --postgres-url's server that "
        "forwards every database (* = host=... port=...), for the rows through PgBouncer "
        "(default: $BENCH_PGBOUNCER_URL, else one started here if pgbouncer is installed)",
    )
    parser.add_argument(
        "--no-pgbouncer", action="store_true", help="skip the rows through PgBouncer"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every figure as JSON")
    parser.add_argument(
        "--plot", type=Path, metavar="PATH", help="write a PNG chart (needs the plot extra)"
    )
    parser.add_argument(
        "--markdown", type=Path, metavar="PATH", help="write the tables as Markdown"
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="PATH",
        help="do not run: write --plot and --markdown from a run saved with --json",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw a progress bar on stderr (default: when stderr is a terminal)",
    )
    from lab.bench.http import command as http_command

    http_command.add_arguments(parser)
    from lab.bench.scale import command as scale_command

    scale_command.add_arguments(parser)


def options_from_args(args: argparse.Namespace) -> Options:
    """The run that the parsed command line asks for."""
    base = QUICK if args.quick else FULL
    try:
        config = base.with_overrides(
            reps=args.reps,
            accounts=args.accounts,
            hop_ops=args.hop_ops,
            transfer_ops=args.transfer_ops,
            clients=args.clients,
            pool=args.pool,
            read_ops=args.read_ops,
            read_clients=args.read_clients,
            read_pools=args.read_pools,
            pg_transfer_ops=args.pg_transfer_ops,
            pg_clients=args.pg_clients,
            pg_pool=args.pg_pool,
            latency_ops=args.latency_ops,
            latency_clients=args.latency_clients,
            latency_pools=args.latency_pools,
            job_ops=args.job_ops,
            event_ops=args.event_ops,
            broker_url=args.broker_url,
            seed=args.seed,
            workloads=args.workloads,
            postgres_url=args.postgres_url,
            postgres=not args.no_postgres,
            pgbouncer_url=args.pgbouncer_url,
            pgbouncer=not args.no_pgbouncer,
        )
    except ValueError as exc:
        raise BenchError(str(exc)) from None
    return Options(
        config=config,
        json_path=args.json,
        plot_path=args.plot,
        markdown_path=args.markdown,
        progress=args.progress,
        from_json=args.from_json,
    )


async def run_from_args(args: argparse.Namespace) -> int:
    """Run the benchmark the parsed command line describes; the exit code."""
    if getattr(args, "suite", None) == "http":
        from lab.bench.http import command as http_command

        return await http_command.run_from_args(args)
    if getattr(args, "suite", None) == "scale":
        from lab.bench.scale import command as scale_command

        return await scale_command.run_from_args(args)
    return await run(options_from_args(args), sys.stdout, sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """The parser of `python -m lab.bench`."""
    parser = argparse.ArgumentParser(
        prog="python -m lab.bench",
        description="When does async database access pay off? Measure it on this machine.",
    )
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m lab.bench`."""
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(run_from_args(args))
    except (BenchError, OSError) as exc:
        # OSError: e.g. an unwritable --json or --markdown path.
        print(f"bench: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return EXIT_ERROR
