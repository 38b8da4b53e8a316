"""`ledgerctl operator add`: create an operator (the back office) and print its API token.

Operators are the only callers that may deposit money; they cannot be made over the HTTP
API, so this command, run by whoever runs the server, is how the first one comes to be.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

from cli.commands import emit
from cli.context import AppContext
from services import SYSTEM, AccessService, Role

Handler = Callable[[AppContext, argparse.Namespace], Awaitable[int]]
AddCommand = Callable[[str, Handler, str], argparse.ArgumentParser]


def add_commands(add: AddCommand) -> None:
    """Register `operator add` on the ledgerctl parser."""
    operator = add("operator", _no_subcommand, "manage operators (the back office)")
    sub = operator.add_subparsers(
        dest="operator_command", required=True, parser_class=type(operator)
    )
    create = sub.add_parser("add", help="create an operator and print its API token (once)")
    create.set_defaults(handler=operator_add, needs_schema=True)
    create.add_argument("email", help="the operator's e-mail address, unique")
    create.add_argument("name", help="display name")
    shown = create.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print JSON")
    shown.add_argument("--token-only", action="store_true", help="print only the token")


async def _no_subcommand(app: AppContext, args: argparse.Namespace) -> int:
    raise AssertionError("argparse requires a subcommand")  # pragma: no cover


async def operator_add(app: AppContext, args: argparse.Namespace) -> int:
    """ledgerctl operator add EMAIL NAME."""
    made = await AccessService(app.sessions, caller=SYSTEM).register(
        args.email, args.name, role=Role.OPERATOR
    )
    if args.token_only:
        print(made.token)
        return 0
    user = made.user
    emit(
        args,
        {
            "user": {"id": user.id, "email": user.email, "name": user.name, "role": user.role},
            "token": made.token,
        },
        f"operator {user.id} {user.email} ({user.name})\n"
        f"token {made.token}\n(shown only this once; it is stored as a hash)",
    )
    return 0
