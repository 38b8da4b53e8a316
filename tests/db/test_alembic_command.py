"""The `alembic` command line, run as a user runs it: from anywhere, failing in one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.cli_process import assert_one_line_error
from tests.support.migration_scripts import copy_scripts
from tests.support.paths import PROJECT_ROOT


def _project_copy(folder: Path) -> Path:
    """alembic.ini and alembic/ in `folder` (the packages come from the installed project)."""
    copy_scripts(folder)
    shutil.copy2(PROJECT_ROOT / "alembic.ini", folder / "alembic.ini")
    return folder / "alembic.ini"


def _alembic(ini: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("DB_")}
    return subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ini), *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_alembic_from_another_directory_migrates_the_projects_database(tmp_path: Path) -> None:
    ini = _project_copy(tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    done = _alembic(ini, elsewhere, "upgrade", "head")

    assert done.returncode == 0, done.stderr
    assert list(elsewhere.iterdir()) == []  # no stray ledger.db where it was run
    assert (ini.parent / "ledger.db").is_file()


def test_alembic_with_the_server_down_fails_in_one_line(tmp_path: Path) -> None:
    ini = _project_copy(tmp_path / "project")
    # Port 1: nothing listens there, so the connection is refused at once.
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/ledger"

    done = _alembic(ini, tmp_path, "upgrade", "head", DATABASE_URL=url)

    line = assert_one_line_error(done)
    assert line.startswith("alembic: error: cannot reach the database at postgresql+asyncpg://")


def test_plain_revision_is_numbered_after_head_without_opening_a_database(
    tmp_path: Path,
) -> None:
    ini = _project_copy(tmp_path / "project")
    versions = ini.parent / "alembic" / "versions"
    before = {path.name for path in versions.glob("*.py")}
    head = max(name.split("_", 1)[0] for name in before)

    done = _alembic(ini, tmp_path, "revision", "-m", "backfill names")

    assert done.returncode == 0, done.stderr
    (written,) = {path.name for path in versions.glob("*.py")} - before
    assert written == f"{int(head) + 1:04d}_backfill_names.py"
    assert not (ini.parent / "ledger.db").exists()
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", str(versions / written)],
        cwd=ini.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout


def test_a_revision_with_a_long_message_is_written_lint_clean_and_quietly(
    tmp_path: Path,
) -> None:
    ini = _project_copy(tmp_path / "project")
    versions = ini.parent / "alembic" / "versions"
    before = set(versions.glob("*.py"))
    message = "record which merchant settles each transfer at the end of every business day " * 2

    done = _alembic(ini, tmp_path, "revision", "-m", message)

    assert done.returncode == 0, done.stderr
    # The post-write hooks print nothing of ruff's: no line-too-long report that looks
    # like a failure although the file ends up clean.
    assert "E501" not in done.stdout + done.stderr
    (written,) = set(versions.glob("*.py")) - before
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", str(written)],
        cwd=ini.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout
