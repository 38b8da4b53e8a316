"""`python -m lab.reliability` (`make soak`): the soak on each engine, one after the other.

Each engine gets a throw-away database. Exit status 0 when every soak passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

from sqlalchemy.exc import DBAPIError

from db import DatabaseSettings, SettingsError, create_engine, migrations
from lab.reliability.databases import postgres_database, sqlite_database
from lab.reliability.soak import SoakConfig, SoakReport, soak

DEFAULT_POSTGRES_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lab.reliability", description="Soak the ledger on each engine."
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="per engine (default 30)")
    parser.add_argument(
        "--engines", default="sqlite,postgresql", help="comma-separated (default: both)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="clients (default 16)")
    parser.add_argument("--accounts", type=int, default=20, help="accounts (default 20)")
    parser.add_argument("--seed", type=int, default=None, help="for a repeatable mix")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SOAK_POSTGRES_URL")
        or os.environ.get("TEST_POSTGRES_URL")
        or DEFAULT_POSTGRES_ADMIN_URL,
        help="a server where the soak may create and drop a database "
        "(default: $SOAK_POSTGRES_URL, $TEST_POSTGRES_URL or the local server)",
    )
    return parser.parse_args(argv)


def database(engine_name: str, args: argparse.Namespace) -> AbstractAsyncContextManager[str]:
    if engine_name == "sqlite":
        return sqlite_database()
    if engine_name == "postgresql":
        return postgres_database(args.postgres_url)
    raise SystemExit(f"unknown engine {engine_name!r}; use sqlite and/or postgresql")


async def soak_one(engine_name: str, args: argparse.Namespace) -> SoakReport:
    config = SoakConfig(
        seconds=args.seconds, concurrency=args.concurrency, accounts=args.accounts, seed=args.seed
    )
    async with database(engine_name, args) as url:
        settings = DatabaseSettings.from_env().with_url(url)
        engine = create_engine(settings)
        try:
            await migrations.upgrade(engine)
            return await soak(engine, config, settings.display_url)
        finally:
            await engine.dispose()


async def run(args: argparse.Namespace) -> bool:
    passed = True
    for engine_name in [e.strip() for e in args.engines.split(",") if e.strip()]:
        try:
            report = await soak_one(engine_name, args)
        except (OSError, DBAPIError, SettingsError) as exc:
            reason = str(exc.orig) if isinstance(exc, DBAPIError) else str(exc)
            print(f"soak on {engine_name}: cannot use the database: {reason}", flush=True)
            if engine_name == "postgresql":
                print("  (set --postgres-url or SOAK_POSTGRES_URL, or use --engines sqlite)")
            passed = False
            continue
        print(report.format(), flush=True)
        passed = passed and report.ok
    return passed


def main(argv: Sequence[str] | None = None) -> int:
    return 0 if asyncio.run(run(parse(argv))) else 1


if __name__ == "__main__":
    sys.exit(main())
