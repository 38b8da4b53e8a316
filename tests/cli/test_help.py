"""`ledgerctl --help` and each command's help: what a newcomer reads before anything else."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from cli.main import build_parser
from tests.support.cli_process import assert_one_line_error, run_cli
from tests.support.paths import PROJECT_ROOT


def _help(*args: str) -> str:
    done = run_cli(*args, "--help")
    assert done.returncode == 0, done.stderr
    return done.stdout


def _commands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every command and subcommand, by its full name ("user add")."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {inner}", p) for inner, p in _commands(sub))


def test_the_help_lists_each_command_once() -> None:
    shown = _help()

    first_words = [line.split()[0] for line in shown.splitlines() if line.strip()]
    names = [name for name, _ in _commands(build_parser()) if " " not in name]
    assert [name for name in names if first_words.count(name) != 1] == []
    assert "{migrate," not in shown  # not again as a list of choices


def test_the_help_points_to_database_url_and_the_docs() -> None:
    shown = _help()

    assert "DATABASE_URL" in shown
    assert "docs/cli.md" in shown
    assert "docs/configuration.md" in shown


def test_every_argument_of_every_command_says_what_it_is() -> None:
    undocumented = [
        f"{name} {action.metavar or action.dest}"
        for name, parser in _commands(build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction)
        and not action.help
    ]
    assert undocumented == []


def test_transfer_help_documents_its_arguments() -> None:
    shown = _help("transfer")
    positional = shown.split("positional arguments:\n", 1)[1].split("\n\n", 1)[0]
    lines = [line.split() for line in positional.splitlines()]

    for argument in ("SOURCE_ID", "DESTINATION_ID", "AMOUNT"):
        (words,) = [words for words in lines if words[:1] == [argument]]
        assert len(words) > 1, f"{argument} has no help"


@pytest.mark.parametrize(
    ("typed", "meant"), [("tranfer", "transfer"), ("migrat", "migrate"), ("balanse", "balance")]
)
def test_a_mistyped_command_gets_a_did_you_mean(typed: str, meant: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cli", typed],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    line = assert_one_line_error(done, code=2)
    assert f"did you mean {meant!r}?" in line
