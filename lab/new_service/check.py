"""Prove a generated project: its `make lint`, then its tests on every engine.

The project runs on this checkout's virtualenv, linked in as its `.venv` (a fresh `make
install` there takes about a minute on a loaded machine; the packages are the same, plus the
lab's), so `make` is told the venv is up to date. With `whole_suite=True` it runs `make test`;
else `make lint`, which type-checks every module, tests included (a test left importing
something dropped fails there), then a few tests that reach every layer and every rewritten
place, the way `make test` runs the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

# One test module per layer, and the ones that load what the rules rewrote (conftest's
# plugins, the moved PgBouncer server, the migrations, the layer rules).
TESTS: Final = (
    "tests/test_layers.py",
    "tests/db/test_migrations.py",
    "tests/db/test_pgbouncer.py",
    "tests/models/test_models.py",
    "tests/services/test_users.py",
    "tests/api/test_openapi.py",
    "tests/cli/test_database_url_flag.py",
)


class CheckFailed(Exception):
    """A step failed; the message has its output."""


def _environment() -> dict[str, str]:
    # The caller's database and pool settings are not the project's business; the engines
    # under test (TEST_BACKENDS, TEST_POSTGRES_URL, ...) are.
    return {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "PYTHONPATH")
        and (not key.startswith("DB_") or key == "DB_SQLITE_ONE_HOP")
    }


def run(step: str, args: Sequence[str], cwd: Path, log: list[str], env: Mapping[str, str]) -> str:
    """Run one step; CheckFailed with its output when it fails."""
    started = time.perf_counter()
    done = subprocess.run(
        list(args), cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=1800
    )
    log.append(f"{step}: exit {done.returncode} in {time.perf_counter() - started:.1f}s")
    if done.returncode != 0:
        raise CheckFailed(f"{step} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def link_virtualenv(project: Path) -> None:
    """Give the project this interpreter's virtualenv as its `.venv`."""
    if sys.prefix == sys.base_prefix:
        raise CheckFailed("run this with the project's virtualenv (.venv/bin/python)")
    (project / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)


def check(project: Path, *, whole_suite: bool = False) -> list[str]:
    """`make lint` and the tests in `project`, which has a `.venv`; returns the log."""
    log: list[str] = []
    env = _environment()
    python = str(project / ".venv" / "bin" / "python")
    where = run(
        "import the app",
        [python, "-c", "import api, cli, services; print(services.__file__)"],
        project,
        log,
        env,
    )
    if not Path(where.strip()).resolve().is_relative_to(project.resolve()):
        raise CheckFailed(f"the project imports another checkout's app: {where.strip()}")
    make = ["make", "--no-print-directory", "-o", ".venv/.installed-stamp"]  # never reinstall
    if whole_suite:
        run("make test", [*make, "test"], project, log, env)
        return log
    run("make lint", [*make, "lint"], project, log, env)
    # The few tests as `make test` runs the suite: every engine, then SQLite on the stock
    # aiosqlite adapter.
    pytest = [python, "-m", "pytest", "-p", "no:cacheprovider", "-q", *TESTS]
    run("pytest " + " ".join(TESTS), pytest, project, log, env)
    stock = {**env, "DB_SQLITE_ONE_HOP": "false", "TEST_BACKENDS": "sqlite"}
    run("the same on the stock adapter", pytest, project, log, stock)
    return log
