"""A small mutation-testing driver: `python -m lab.reliability.mutation` (or `make mutation`).

Each mutant changes one operator or constant of a target module (a comparison flipped or
made strict, + and - swapped, an int constant moved by one, True and False swapped, and/or
swapped, a bare `await` statement deleted), is written into a throw-away copy of the
repository, and the SQLite tests of the transfer core (with --both-engines the PostgreSQL
ones too) run against it with a timeout. A
mutant is killed when they fail, or hang past the timeout; it survives when they pass.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("services/transfer_core.py", "repositories/accounts.py")
TESTS = (
    "tests/services/test_decide.py",
    "tests/services/test_transfer_core.py",
    "tests/services/test_transfers.py",
    "tests/services/test_batch.py",
    "tests/services/test_idempotency.py",
    "tests/services/test_idempotency_scopes.py",
    "tests/services/test_authorization.py",
    "tests/services/test_accounts.py",
    "tests/repositories/test_guarded_update.py",
    "tests/repositories/test_repositories.py",
    "tests/services/test_auditor.py",
)
_SWAPS: dict[type[ast.AST], type[ast.AST]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.And: ast.Or,
    ast.Or: ast.And,
}


@dataclass(frozen=True)
class Mutant:
    path: str
    line: int
    description: str
    source: str


def _mutations(tree: ast.Module) -> Iterator[tuple[int, str, ast.AST, ast.AST | None]]:
    """(line, description, node, replacement); a None replacement deletes a statement."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in _SWAPS:
                    ops: list[Any] = list(node.ops)
                    ops[i] = _SWAPS[type(op)]()
                    new = ast.Compare(node.left, ops, node.comparators)
                    yield (
                        node.lineno,
                        f"{type(op).__name__} -> {type(new.ops[i]).__name__}",
                        node,
                        new,
                    )
        elif isinstance(node, ast.BinOp) and type(node.op) in _SWAPS:
            new_op: Any = _SWAPS[type(node.op)]()
            yield (
                node.lineno,
                f"{type(node.op).__name__} -> {type(new_op).__name__}",
                node,
                ast.BinOp(node.left, new_op, node.right),
            )
        elif isinstance(node, ast.BoolOp) and type(node.op) in _SWAPS:
            new_bool: Any = _SWAPS[type(node.op)]()
            yield (
                node.lineno,
                f"{type(node.op).__name__} -> {type(new_bool).__name__}",
                node,
                ast.BoolOp(new_bool, node.values),
            )
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            yield (
                node.lineno,
                f"{node.value} -> {node.value + 1}",
                node,
                ast.Constant(node.value + 1),
            )
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            yield (
                node.lineno,
                f"{node.value} -> {not node.value}",
                node,
                ast.Constant(not node.value),
            )
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Await):
            yield node.lineno, "delete the await statement", node, None


class _Replace(ast.NodeTransformer):
    def __init__(self, target: ast.AST, replacement: ast.AST | None) -> None:
        self.target, self.replacement = target, replacement

    def visit(self, node: ast.AST) -> ast.AST | None:
        if node is self.target:
            return self.replacement if self.replacement is not None else ast.Pass()
        result: ast.AST | None = super().visit(node)
        return result


def mutants(path: str) -> list[Mutant]:
    text = (ROOT / path).read_text()
    found = []
    for index, (line, description, _, _) in enumerate(_mutations(ast.parse(text))):
        tree = ast.parse(text)  # a fresh tree per mutant: find the same node again
        _, _, node, replacement = list(_mutations(tree))[index]
        _Replace(node, replacement).visit(tree)
        found.append(Mutant(path, line, description, ast.unparse(ast.fix_missing_locations(tree))))
    return found


def run_tests(copy: Path, timeout: float, both_engines: bool = False) -> str:
    """'killed', 'survived' or 'timeout' (a hang counts as killed)."""
    only_sqlite = [] if both_engines else ["-k", "not postgresql"]
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        *only_sqlite,
        *TESTS,
    ]
    try:
        result = subprocess.run(
            command, cwd=copy, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return "timeout"
    return "survived" if result.returncode == 0 else "killed"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.reliability.mutation")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per mutant")
    parser.add_argument(
        "--both-engines",
        action="store_true",
        help="run the PostgreSQL tests too (TEST_POSTGRES_URL), for PostgreSQL-only code",
    )
    parser.add_argument("targets", nargs="*", default=list(TARGETS))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mutation-") as folder:
        copy = Path(folder) / "repo"
        shutil.copytree(
            ROOT,
            copy,
            ignore=shutil.ignore_patterns(".venv", ".git", "*.db*", "__pycache__", ".*_cache"),
        )
        if run_tests(copy, args.timeout * 3, args.both_engines) != "survived":
            print("the tests fail without any mutant; fix them first")
            return 1
        counts = {"killed": 0, "survived": 0, "timeout": 0}
        started = time.monotonic()
        for target in args.targets:
            original = (copy / target).read_text()
            try:
                for mutant in mutants(target):
                    (copy / target).write_text(mutant.source)
                    verdict = run_tests(copy, args.timeout, args.both_engines)
                    counts[verdict] += 1
                    if verdict == "survived":
                        print(
                            f"SURVIVED {mutant.path}:{mutant.line}: {mutant.description}",
                            flush=True,
                        )
            finally:
                (copy / target).write_text(original)
        total = sum(counts.values())
        killed = counts["killed"] + counts["timeout"]
        print(
            f"{total} mutants: {counts['killed']} killed, {counts['timeout']} hung (killed by the "
            f"timeout), {counts['survived']} survived; score {killed / max(total, 1):.0%} "
            f"in {time.monotonic() - started:.0f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
