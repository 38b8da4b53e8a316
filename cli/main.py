"""`ledgerctl`: the command line over the services.

Errors print one line on stderr and exit non-zero: 1 for a refused request, a database or
configuration problem; 2 for a malformed command line. Never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from cli import commands, events, operators, serve
from cli.context import AppContext, dispose
from cli.errors import EXIT_ERROR, EXIT_USAGE, exit_for
from cli.inputs import whole_number
from db import DatabaseSettings, create_engine, create_session_factory
from db.checkout import default_sqlite_path
from services import ensure_migrated
from services.db_errors import translate

Handler = Callable[[AppContext, argparse.Namespace], Awaitable[int]]
Subcommands = Any  # argparse's _SubParsersAction, which it does not export


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the whole usage block; one line is the contract here.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # Python 3.14's suggest_on_error, for the versions this project supports.
        choices = action.choices
        if isinstance(value, str) and choices is not None and value not in choices:
            close = difflib.get_close_matches(value, [str(choice) for choice in choices], n=1)
            if close:
                raise argparse.ArgumentError(
                    action, f"invalid choice: {value!r}, did you mean {close[0]!r}?"
                )
        super()._check_value(action, value)


def _add(
    sub: Subcommands, name: str, handler: Handler, help_: str, *, needs_schema: bool = True
) -> _Parser:
    """Register a command. `needs_schema`: refuse to run it unless the schema is at head."""
    parser = sub.add_parser(name, help=help_, description=help_)
    assert isinstance(parser, _Parser)
    parser.set_defaults(handler=handler, needs_schema=needs_schema)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree: one function per group of commands."""
    parser = _Parser(
        prog="ledgerctl",
        description="Async ledger on SQLite or PostgreSQL.",
        epilog=(
            f"The database is DATABASE_URL (default: the SQLite file {default_sqlite_path()}); "
            "it and the DB_* settings: docs/configuration.md. Every command: docs/cli.md, or "
            "`ledgerctl COMMAND --help`."
        ),
    )
    parser.add_argument(
        "--database-url", metavar="URL", help="the database, instead of DATABASE_URL"
    )
    # One metavar: argparse would otherwise print every command again as a {choice,...} list.
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, title="commands", metavar="COMMAND"
    )

    def add(name: str, handler: Handler, help_: str, needs_schema: bool = True) -> _Parser:
        return _add(sub, name, handler, help_, needs_schema=needs_schema)

    _add_setup_commands(add)
    _add_ledger_commands(add)
    _add_reading_commands(add)
    _add_job_commands(add)
    operators.add_commands(add)
    serve.add_commands(add)
    events.add_commands(add)
    return parser


Add = Callable[..., _Parser]


def _add_setup_commands(add: Add) -> None:
    add(
        "migrate",
        commands.migrate,
        "upgrade the database schema to the newest revision",
        needs_schema=False,
    )
    demo = add("demo", commands.demo, "run the demo workload and audit it")
    demo.add_argument(
        "--transfers", type=whole_number, default=1000, help="how many (default 1000)"
    )
    demo.add_argument(
        "--concurrency", type=whole_number, default=50, help="concurrent tasks (default 50)"
    )
    demo.add_argument(
        "--users", type=whole_number, default=10, help="users, one account each (default 10)"
    )
    demo.add_argument(
        "--seed", type=whole_number, default=None, help="random seed for a repeatable run"
    )
    demo.add_argument(
        "--unbatched",
        action="store_true",
        help="one transaction per transfer instead of group commit (to compare)",
    )


def _add_ledger_commands(add: Add) -> None:
    """Users, accounts, and the commands that move money."""
    user = add("user", commands.no_subcommand, "manage users", needs_schema=False)
    user_sub = user.add_subparsers(dest="user_command", required=True, parser_class=_Parser)
    user_add = _add(user_sub, "add", commands.user_add, "register a user")
    user_add.add_argument("email", help="the user's e-mail address, unique")
    user_add.add_argument("name", help="display name")
    user_add.add_argument("--json", action="store_true", help="print JSON")

    account = add("account", commands.no_subcommand, "manage accounts", needs_schema=False)
    account_sub = account.add_subparsers(
        dest="account_command", required=True, parser_class=_Parser
    )
    account_open = _add(account_sub, "open", commands.account_open, "open an account for a user")
    account_open.add_argument("user_id", help="the owner's user id")
    account_open.add_argument("currency", help="ISO-4217 code, e.g. EUR")
    account_open.add_argument("--json", action="store_true", help="print JSON")

    amount_help = "whole minor units in ASCII digits (cents: 1050 for 10.50)"
    source = ("source_id", "SOURCE_ID", "the account the money leaves")
    destination = ("destination_id", "DESTINATION_ID", "the account the money goes to")
    for name, help_, ends in (
        (
            "deposit",
            "put money into an account",
            [(*destination[:1], "ACCOUNT_ID", destination[2])],
        ),
        ("withdraw", "take money out of an account", [(*source[:1], "ACCOUNT_ID", source[2])]),
        ("transfer", "move money between two accounts", [source, destination]),
    ):
        p = add(name, commands.move_money, help_)
        for end, metavar, end_help in ends:
            p.add_argument(end, metavar=metavar, help=end_help)
        p.add_argument("amount", metavar="AMOUNT", help=amount_help)
        _add_request_options(p)


def _add_reading_commands(add: Add) -> None:
    """Balances, history, the audit and the dashboard."""
    balance = add("balance", commands.balance, "show an account's balance")
    balance.add_argument("account_id", help="the account")
    balance.add_argument("--json", action="store_true", help="print JSON")

    history = add("history", commands.history, "show an account's transfers, newest first")
    history.add_argument("account_id", help="the account")
    history.add_argument("--limit", default="20", help="page size (default 20)")
    history.add_argument("--before", default=None, help="transfer id to page back from")
    history.add_argument("--json", action="store_true", help="print JSON")

    export = add("export", commands.export, "print an account's whole history as JSON lines")
    export.add_argument("account_id", help="the account")
    audit = add("audit", commands.audit, "verify balances against the transfer history")
    audit.add_argument("--json", action="store_true", help="print JSON")

    dashboard = add("dashboard", commands.dashboard, "show a user's accounts and activity")
    dashboard.add_argument("user_id", help="the user")
    dashboard.add_argument("--recent", default="10", help="recent transfers (default 10)")
    dashboard.add_argument("--json", action="store_true", help="print JSON")


def _add_job_commands(add: Add) -> None:
    worker = add("worker", commands.worker, "run background jobs until SIGINT or SIGTERM")
    worker.add_argument(
        "--concurrency", type=whole_number, default=4, help="batches of jobs at once (default 4)"
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


def _add_request_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", default=None, help="idempotency key; a retry with it is safe")
    parser.add_argument("--description", default=None, help="free text kept with the transfer")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _settings(args: argparse.Namespace) -> DatabaseSettings:
    # --database-url stands in for DATABASE_URL before the settings are checked, so that the
    # DB_* settings are judged against the URL in use (DB_PG_POOLER needs PostgreSQL).
    if args.database_url:
        return DatabaseSettings(url=args.database_url)
    return DatabaseSettings()


async def _run(args: argparse.Namespace, settings: DatabaseSettings) -> int:
    engine: AsyncEngine = create_engine(settings)
    try:
        app = AppContext(settings=settings, engine=engine, sessions=create_session_factory(engine))
        if args.needs_schema:
            await ensure_migrated(engine)
        handler: Handler = args.handler
        return await handler(app, args)
    except BrokenPipeError:
        raise
    except (SQLAlchemyError, OSError) as exc:
        # What the services did not already translate, e.g. from `migrate`; translated
        # here while the engine can still name its pool settings.
        error = translate(exc, engine)
        if error is None:
            raise
        raise error from exc
    finally:
        # Every exit path: a pooled aiosqlite connection left open keeps its thread alive.
        await dispose(engine)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ledgerctl` console script."""
    args = build_parser().parse_args(argv)
    url = "the database"
    try:
        settings = _settings(args)
        url = settings.display_url
        # A command may choose its event loop (serve: uvloop, cli/serve.py).
        with asyncio.Runner(loop_factory=getattr(args, "loop_factory", None)) as runner:
            return runner.run(_run(args, settings))
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except KeyboardInterrupt:
        return _fail(EXIT_ERROR, "interrupted")
    except Exception as exc:
        outcome = exit_for(exc, url)
        if outcome is None:
            raise
        return _fail(*outcome)


def _fail(code: int, line: str) -> int:
    print(f"ledgerctl: error: {line or 'failed'}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
