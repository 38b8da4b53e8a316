"""`python -m lab.bench http`: the options, read from the benchmark's parser."""

from __future__ import annotations

import argparse
import sys

from lab.bench.errors import BenchError
from lab.bench.http import scenarios
from lab.bench.http.runner import HttpOptions, run_http

FULL_SECONDS = 3.0
QUICK_SECONDS = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options only `bench http` reads (it shares --quick, --reps, --json and the rest)."""
    group = parser.add_argument_group("bench http (real servers under wrk)")
    group.add_argument(
        "--seconds",
        type=float,
        default=None,
        help=f"length of each wrk run (default {FULL_SECONDS:.0f}; --quick: {QUICK_SECONDS:.0f})",
    )
    group.add_argument(
        "--profile",
        action="store_true",
        help="sample the server with py-spy during each run and report the CPU per request "
        "by layer (server, routing, validation, authentication, SQLAlchemy, driver)",
    )
    group.add_argument(
        "--scenarios",
        default=None,
        help="comma-separated, from: " + ", ".join(s.name for s in scenarios.full()),
    )


def options_from_args(args: argparse.Namespace) -> HttpOptions:
    """The `bench http` run the parsed command line asks for."""
    chosen = scenarios.quick() if args.quick else scenarios.full()
    if args.scenarios:
        wanted = {name.strip() for name in args.scenarios.split(",") if name.strip()}
        unknown = wanted - {s.name for s in chosen}
        if unknown:
            raise BenchError(f"unknown scenario {', '.join(sorted(unknown))}")
        chosen = tuple(s for s in chosen if s.name in wanted)
    seconds = args.seconds or (QUICK_SECONDS if args.quick else FULL_SECONDS)
    if seconds < 1:
        raise BenchError("--seconds must be at least 1 (wrk runs whole seconds)")
    return HttpOptions(
        scenarios=chosen,
        reps=args.reps or (1 if args.quick else 3),
        seconds=seconds,
        warmup=0.0 if args.quick else 1.0,
        share=args.quick,
        postgres_url=None if args.no_postgres else args.postgres_url,
        json_path=args.json,
        markdown_path=args.markdown,
        plot_path=args.plot,
        profile=args.profile,
    )


async def run_from_args(args: argparse.Namespace) -> int:
    """Run `bench http` as parsed; the exit code."""
    return await run_http(options_from_args(args), sys.stdout)
