"""The tables people read instead of the code, checked against the code: the route table
of docs/api.md against the app's routes, the command list of docs/cli.md against the
`ledgerctl` parser. A route or command added, renamed or removed fails here until the
page says so."""

from __future__ import annotations

import argparse
import re

from starlette.routing import Route

from api.app import create_app
from api.settings import ApiSettings
from cli.main import build_parser
from tests.support.paths import PROJECT_ROOT

DOCS = PROJECT_ROOT / "docs"
# `GET /accounts/{id}/transfers?limit=&before=` in a table row, any number per row.
_ROUTE = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`?\s]*)[^`]*`")
_PARAMETER = re.compile(r"\{[^}]*\}")


def _route_table() -> set[tuple[str, str]]:
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    return {
        (method, _PARAMETER.sub("{}", path))
        for row in rows
        for method, path in _ROUTE.findall(row.split("|")[1])
    }


def _app_routes() -> set[tuple[str, str]]:
    app = create_app(ApiSettings())
    in_schema = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    # Routes kept out of the OpenAPI document on purpose, such as /docs itself; not the
    # document and the docs page's OAuth2 helper, which belong to that page.
    plumbing = {app.openapi_url, app.swagger_ui_oauth2_redirect_url}
    outside = {
        (method, route.path)
        for route in app.routes
        if isinstance(route, Route) and route.path not in plumbing
        for method in route.methods or ()
        if method != "HEAD"
    }
    return {(method, _PARAMETER.sub("{}", path)) for method, path in in_schema | outside}


def test_the_route_table_of_docs_api_lists_every_route_of_the_app() -> None:
    assert _route_table() == _app_routes()


def _leaf_commands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> dict[str, argparse.ArgumentParser]:
    commands: dict[str, argparse.ArgumentParser] = {}
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers and prefix:
        return {prefix: parser}
    for action in subparsers:
        for name, sub in action.choices.items():
            commands |= _leaf_commands(sub, f"{prefix} {name}".strip())
    return commands


def _command_list() -> dict[str, str]:
    """docs/cli.md's first code block: each `ledgerctl ...` line by its command words."""
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    block = text.split("```\n", 2)[1]
    listed: dict[str, str] = {}
    for line in block.splitlines()[1:]:  # the first line is the general form
        usage = line.split("#", 1)[0].split()
        assert usage[0] == "ledgerctl", line
        words = [w for w in usage[1:] if re.fullmatch(r"[a-z][a-z-]*", w)]
        stop = next((i for i, w in enumerate(usage[1:]) if w not in words), len(usage) - 1)
        listed[" ".join(usage[1 : 1 + stop])] = line
    return listed


def test_the_command_list_of_docs_cli_lists_every_command() -> None:
    assert set(_command_list()) == set(_leaf_commands(build_parser()))


def test_every_option_the_command_list_shows_exists() -> None:
    commands = _leaf_commands(build_parser())
    stale = [
        f"{name} {option}"
        for name, line in _command_list().items()
        for option in re.findall(r"--[a-z][a-z-]*", line.split("#", 1)[0])
        if option not in commands[name]._option_string_actions
    ]
    assert stale == []


def test_extending_walks_an_endpoint_and_a_command_through_each_file_they_touch() -> None:
    text = (DOCS / "extending.md").read_text(encoding="utf-8")
    steps = (
        "api/schemas.py",
        "api/ledger.py",
        "api/routes/__init__.py",
        "api/problems.py",
        "tests/api/test_authorization_matrix.py",
        "make openapi",
        "cli/commands.py",
        "cli/main.py",
        "docs/cli.md",
    )
    assert [step for step in steps if f"`{step}`" not in text] == []


def test_every_path_extending_names_exists() -> None:
    text = (DOCS / "extending.md").read_text(encoding="utf-8")
    named = set(
        re.findall(
            r"`((?:api|cli|db|models|repositories|services|tests|alembic)/[\w/.]+\.py)`", text
        )
    )
    # Files the recipe tells you to create.
    created = {p for p in named if re.search(r"merchant|NNNN", p)}
    assert [p for p in sorted(named - created) if not (PROJECT_ROOT / p).is_file()] == []
