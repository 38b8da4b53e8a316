"""Extend a copy of the project the way docs/extending.md says, and check the result.

`make check-extension` (and tests/db/test_scripted_extension.py) run this: in a temporary
copy of the repository it adds a Merchant model, autogenerates its migration with
`alembic revision --autogenerate`, adds a repository, a service and a test, then runs
`make lint` and the new and the migration tests on both engines. Only the three `__init__`
files gain exports and services/results.py gains the new result at its end (the project's
rule: every service result is declared there); every other existing file must come out
byte for byte unchanged, and those four only gain lines.

    python -m tests.support.scripted_extension [--whole-suite] [--keep]
"""

from __future__ import annotations

import argparse
import ast
import difflib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support import extension_templates as templates
from tests.support.paths import PROJECT_ROOT

NEW_FILES = {
    "models/merchant.py": templates.MODEL,
    "repositories/merchants.py": templates.REPOSITORY,
    "services/merchants.py": templates.SERVICE,
    "tests/services/test_merchants.py": templates.TEST,
}
EXPORTS = {
    "models/__init__.py": ("models.merchant", ("Merchant",)),
    "repositories/__init__.py": ("repositories.merchants", ("MerchantRepository",)),
    "services/__init__.py": ("services.merchants", ("MerchantService",)),
}
# Files the extension may only append to: services' results all live in one module.
APPENDS = {"services/results.py": templates.RESULT}
MIGRATION_MESSAGE = "merchants"
TESTS = (
    "tests/services/test_merchants.py",
    "tests/services/test_results.py",  # the results rule, over the new service too
    "tests/db/test_migrations.py",
    "tests/db/test_migrations_jobs.py",
)
_NOT_COPIED = shutil.ignore_patterns(
    ".venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache", "*.db", "*.db-*",
    "build", "dist", "*.egg-info", "bench-results",
)  # fmt: skip


class ExtensionFailed(Exception):
    """A step of the extension failed; the message says which and what it printed."""


def copy_project(destination: Path) -> Path:
    """Copy the checkout (sources, docs, mypy's cache) and link this virtualenv into it."""
    shutil.copytree(PROJECT_ROOT, destination, ignore=_NOT_COPIED, symlinks=True)
    if sys.prefix == sys.base_prefix:
        raise ExtensionFailed("run this with the project's virtualenv (.venv/bin/python)")
    (destination / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return destination


def fingerprint(root: Path) -> dict[str, str]:
    """A hash of every file a user would edit (caches and the venv link left out)."""
    skip = {".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__"}
    hashes = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not skip.intersection(relative.parts):
            hashes[relative.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def write_new(root: Path, relative: str, text: str) -> None:
    """Write a file that must not exist yet: the extension only adds files."""
    path = root / relative
    if path.exists():
        raise ExtensionFailed(f"{relative} already exists; the extension only adds files")
    path.write_text(text)


def add_exports(init: Path, module: str, names: Sequence[str]) -> None:
    """Import `names` from `module` in a package's __init__ and list them in __all__.

    The import goes after the last import and the names before the closing bracket of
    `__all__`; `ruff check --fix` then sorts both, as a user's editor would.
    """
    source = init.read_text()
    tree = ast.parse(source)
    imports = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    exported = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
    ]
    if not imports or len(exported) != 1 or not isinstance(exported[0].value, ast.List):
        raise ExtensionFailed(f"{init}: expected imports and one `__all__ = [...]`")
    lines = source.splitlines(keepends=True)
    closing = (exported[0].end_lineno or 0) - 1  # the line of `]`
    lines[closing:closing] = [f'    "{name}",\n' for name in names]
    after_imports = imports[-1].end_lineno or 0
    lines[after_imports:after_imports] = [f"from {module} import {', '.join(names)}\n"]
    init.write_text("".join(lines))


def only_added_lines(before: str, after: str) -> bool:
    """Whether `after` is `before` with lines inserted and none changed or removed."""
    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines(), autojunk=False)
    return all(tag in ("equal", "insert") for tag, *_ in matcher.get_opcodes())


def run(
    step: str, args: Sequence[str | Path], cwd: Path, env: Mapping[str, str], log: list[str]
) -> str:
    """Run one command of the extension; ExtensionFailed with its output if it fails."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    log.append(f"{step}: exit {done.returncode} in {time.perf_counter() - started:.1f}s")
    if done.returncode != 0:
        raise ExtensionFailed(f"{step} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def _environment(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "PYTHONPATH")
        # A caller's pool or timeout settings are not the copy's business; the adapter
        # choice is (make test's second run uses the stock one).
        and (not key.startswith("DB_") or key == "DB_SQLITE_ONE_HOP")
    }
    return {**env, **extra}


def extend(root: Path, log: list[str]) -> Path:
    """Add the model, autogenerate its migration, add repository, service and test;
    return the migration file."""
    python = sys.executable
    write_new(root, "models/merchant.py", NEW_FILES["models/merchant.py"])
    add_exports(root / "models/__init__.py", *EXPORTS["models/__init__.py"])

    # Autogenerate compares the models with a database at head.
    database = root.parent / "autogenerate.db"
    alembic_env = _environment(DATABASE_URL=f"sqlite+aiosqlite:///{database}")
    versions = root / "alembic" / "versions"
    before = set(versions.glob("*.py"))
    run(
        "alembic upgrade head", [python, "-m", "alembic", "upgrade", "head"], root, alembic_env, log
    )
    run(
        "alembic revision --autogenerate",
        [python, "-m", "alembic", "revision", "--autogenerate", "-m", MIGRATION_MESSAGE],
        root,
        alembic_env,
        log,
    )
    written = set(versions.glob("*.py")) - before
    if len(written) != 1:
        raise ExtensionFailed(f"expected one new revision file, got {sorted(written)}")
    (migration,) = written

    for relative, text in APPENDS.items():
        with (root / relative).open("a") as file:
            file.write(text)
    for relative in ("repositories/merchants.py", "services/merchants.py"):
        write_new(root, relative, NEW_FILES[relative])
    for relative in ("repositories/__init__.py", "services/__init__.py"):
        add_exports(root / relative, *EXPORTS[relative])
    write_new(
        root, "tests/services/test_merchants.py", NEW_FILES["tests/services/test_merchants.py"]
    )
    # The user's editor sorts what add_exports appended (and touches nothing else).
    inits = [root / relative for relative in EXPORTS]
    fix: list[str | Path] = [
        python,
        "-m",
        "ruff",
        "check",
        "--fix",
        "--select",
        "I001,RUF022",
        *inits,
    ]
    run("sort the exports", fix, root, _environment(), log)
    return migration


def check(root: Path, log: list[str], *, whole_suite: bool) -> None:
    """`make lint`, then the new and the migration tests (or the whole suite)."""
    # -o: never (re)install: the venv is this checkout's, linked in, not the copy's.
    stamp = ".venv/.installed-stamp"
    run(
        "make lint",
        ["make", "--no-print-directory", "-o", stamp, "lint"],
        root,
        _environment(),
        log,
    )
    # The whole suite minus this check itself, which would copy the copy.
    tests = ["--ignore", "tests/db/test_scripted_extension.py"] if whole_suite else list(TESTS)
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
    run(
        "pytest" + ("" if whole_suite else " " + " ".join(tests)), pytest, root, _environment(), log
    )


def run_extension(workdir: Path, *, whole_suite: bool = False) -> list[str]:
    """The whole check in `workdir`; returns its log, or raises ExtensionFailed."""
    log: list[str] = []
    root = copy_project(workdir / "project")
    original = fingerprint(root)
    originals = {relative: (root / relative).read_text() for relative in {*EXPORTS, *APPENDS}}
    migration = extend(root, log)
    expected_id = migration.name.split("_", 1)[0]
    if migration.name != f"{expected_id}_{MIGRATION_MESSAGE}.py" or not expected_id.isdigit():
        raise ExtensionFailed(f"the revision is named {migration.name}, not NNNN_merchants.py")
    check(root, log, whole_suite=whole_suite)

    after = fingerprint(root)
    changed = {path for path, digest in original.items() if after.get(path) != digest}
    if changed != set(EXPORTS) | set(APPENDS):
        raise ExtensionFailed(f"existing files changed besides the exports: {sorted(changed)}")
    for relative in changed:
        if not only_added_lines(originals[relative], (root / relative).read_text()):
            raise ExtensionFailed(f"{relative}: lines were changed or removed, not only added")
    added = set(after) - set(original)
    expected = set(NEW_FILES) | {migration.relative_to(root).as_posix()}
    if added != expected:
        raise ExtensionFailed(f"unexpected new files: {sorted(added - expected)}")
    log.append(f"added {', '.join(sorted(added))}; added lines to {', '.join(sorted(changed))}")
    return log


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of `make check-extension`."""
    parser = argparse.ArgumentParser(prog="check-extension", description=__doc__)
    parser.add_argument("--whole-suite", action="store_true", help="run every test, not the few")
    parser.add_argument("--keep", action="store_true", help="keep the extended copy")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="ledger-extension-"))
    started = time.perf_counter()
    try:
        for line in run_extension(workdir, whole_suite=args.whole_suite):
            print(line)
    except ExtensionFailed as exc:
        print(f"check-extension: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"the extended copy is in {workdir / 'project'}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"check-extension: passed in {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
