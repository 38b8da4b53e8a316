"""`ledgerctl`: the command line over the services.

Errors print one line on stderr and exit non-zero: 1 for a refused request, a database or
configuration problem; 2 for a malformed command line. Never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import NoReturn

from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import command as bench_command
from cli import commands
from cli.context import AppContext
from db import DatabaseSettings, SettingsError, create_engine, create_session_factory
from db.migrations import MigrationError
from services.errors import LedgerError

EXIT_ERROR = 1
EXIT_USAGE = 2

Handler = Callable[[AppContext, argparse.Namespace], Awaitable[int]]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the whole usage block; one line is the contract here.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    parser = _Parser(prog="ledgerctl", description="Async ledger on SQLite or PostgreSQL.")
    parser.add_argument(
        "--database-url",
        help="overrides DATABASE_URL (default: sqlite+aiosqlite:///ledger.db)",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(handler=handler)
        return p

    add("migrate", commands.migrate, "upgrade the database schema to the newest revision")

    demo = add("demo", commands.demo, "run the demo workload and audit it")
    demo.add_argument("--transfers", type=int, default=1000, help="how many (default 1000)")
    demo.add_argument("--concurrency", type=int, default=50, help="concurrent tasks (default 50)")
    demo.add_argument("--users", type=int, default=10, help="users, one account each (default 10)")
    demo.add_argument("--seed", type=int, default=None, help="random seed for a repeatable run")
    demo.add_argument(
        "--unbatched",
        action="store_true",
        help="one transaction per transfer instead of group commit (to compare)",
    )

    user = add("user", commands.no_subcommand, "manage users")
    user_sub = user.add_subparsers(dest="user_command", required=True, parser_class=_Parser)
    user_add = user_sub.add_parser("add", help="register a user")
    user_add.set_defaults(handler=commands.user_add)
    user_add.add_argument("email")
    user_add.add_argument("name")
    user_add.add_argument("--json", action="store_true", help="print JSON")

    account = add("account", commands.no_subcommand, "manage accounts")
    account_sub = account.add_subparsers(
        dest="account_command", required=True, parser_class=_Parser
    )
    account_open = account_sub.add_parser("open", help="open an account for a user")
    account_open.set_defaults(handler=commands.account_open)
    account_open.add_argument("user_id")
    account_open.add_argument("currency", help="ISO-4217 code, e.g. EUR")
    account_open.add_argument("--json", action="store_true", help="print JSON")

    for name, handler, help_ in (
        ("deposit", commands.deposit, "put money into an account"),
        ("withdraw", commands.withdraw, "take money out of an account"),
    ):
        p = add(name, handler, help_)
        p.add_argument("account_id")
        p.add_argument("amount", help="whole minor units (cents), e.g. 1050 for 10.50")
        _add_request_options(p)

    transfer = add("transfer", commands.transfer, "move money between two accounts")
    transfer.add_argument("source_id")
    transfer.add_argument("destination_id")
    transfer.add_argument("amount", help="whole minor units (cents)")
    _add_request_options(transfer)

    balance = add("balance", commands.balance, "show an account's balance")
    balance.add_argument("account_id")
    balance.add_argument("--json", action="store_true", help="print JSON")

    history = add("history", commands.history, "show an account's transfers, newest first")
    history.add_argument("account_id")
    history.add_argument("--limit", default="20", help="page size (default 20)")
    history.add_argument("--before", default=None, help="transfer id to page back from")
    history.add_argument("--json", action="store_true", help="print JSON")

    audit = add("audit", commands.audit, "verify balances against the transfer history")
    audit.add_argument("--json", action="store_true", help="print JSON")

    bench = add("bench", commands.bench, "benchmark: when does async pay off? (= python -m bench)")
    bench_command.add_arguments(bench)
    worker = add("worker", commands.worker, "run background jobs until SIGINT or SIGTERM")
    worker.add_argument(
        "--concurrency", type=int, default=4, help="batches of jobs at once (default 4)"
    )
    worker.add_argument("--poll-interval", type=float, default=1.0, help="seconds (default 1)")
    worker.add_argument("--lease-seconds", type=float, default=30.0, help="(default 30)")
    worker.add_argument(
        "--shutdown-timeout", type=float, default=10.0, help="seconds to finish (default 10)"
    )
    worker.add_argument("--job-timeout", type=float, default=None, help="seconds per job")
    worker.add_argument("--drain", action="store_true", help="exit once nothing is due or running")
    worker.add_argument(
        "--progress-interval", type=float, default=1.0, help="seconds between progress lines"
    )

    jobs = add("jobs", commands.jobs, "show the job queue by status and the latest dead jobs")
    jobs.add_argument("--dead", default="5", help="how many dead jobs to list (default 5)")
    jobs.add_argument("--json", action="store_true", help="print JSON")

    dashboard = add("dashboard", commands.dashboard, "show a user's accounts and activity")
    dashboard.add_argument("user_id")
    dashboard.add_argument("--recent", default="10", help="recent transfers (default 10)")
    dashboard.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _add_request_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", default=None, help="idempotency key; a retry with it is safe")
    parser.add_argument("--description", default=None)
    parser.add_argument("--json", action="store_true", help="print JSON")


def _settings(args: argparse.Namespace) -> DatabaseSettings:
    settings = DatabaseSettings.from_env()
    if args.database_url:
        settings = settings.with_url(args.database_url)
    return settings


async def _run(args: argparse.Namespace, settings: DatabaseSettings) -> int:
    engine: AsyncEngine = create_engine(settings)
    try:
        app = AppContext(settings=settings, engine=engine, sessions=create_session_factory(engine))
        handler: Handler = args.handler
        return await handler(app, args)
    finally:
        # Every exit path: a pooled aiosqlite connection left open keeps its thread alive.
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ledgerctl` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except SettingsError as exc:
        return _fail(str(exc))
    try:
        return asyncio.run(_run(args, settings))
    except (LedgerError, SettingsError, MigrationError, commands.CommandError) as exc:
        return _fail(str(exc))
    except DBAPIError as exc:
        # Name the database (password masked): "unable to open database file" or "file is
        # not a database" mean little without knowing which one.
        return _fail(
            f"database error on {settings.display_url}: {commands.describe_database_error(exc)}"
        )
    except PoolTimeout:
        return _fail(
            f"no database connection became free within DB_POOL_TIMEOUT={settings.pool_timeout}s "
            f"(DB_POOL_SIZE={settings.pool_size}, DB_MAX_OVERFLOW={settings.max_overflow})"
        )
    except SQLAlchemyError as exc:
        return _fail(f"database error: {exc}")
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except OSError as exc:
        # The driver could not reach a server at all (refused, unknown host, timed out);
        # asyncpg raises these as they are, not wrapped in a DBAPIError.
        reason = (
            f"no answer within DB_POOL_TIMEOUT={settings.pool_timeout}s"
            if isinstance(exc, TimeoutError)
            else str(exc) or type(exc).__name__
        )
        return _fail(f"cannot reach the database at {settings.display_url}: {reason}")
    except KeyboardInterrupt:
        return _fail("interrupted")


def _fail(message: str) -> int:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"ledgerctl: error: {first_line}", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
