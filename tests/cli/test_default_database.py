"""Without DATABASE_URL, every command of a checkout uses the checkout's own ledger.db,
whichever directory it runs from: `ledgerctl migrate` in `alembic/` creates no second
database there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from db.settings import DatabaseSettings
from tests.support.paths import PROJECT_ROOT

# What a checkout holds that a command needs (a copy, so the real ledger.db is left alone).
_SOURCES = ("api", "cli", "db", "models", "repositories", "services", "alembic")


def _checkout_copy(folder: Path) -> Path:
    for name in _SOURCES:
        shutil.copytree(
            PROJECT_ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    for name in ("alembic.ini", "pyproject.toml"):
        shutil.copy2(PROJECT_ROOT / name, folder / name)
    return folder


def _ledgerctl(checkout: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("DB_")}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=cwd,
        # The copy's packages first, so that its db/checkout.py finds the copy.
        env={**clean, "PYTHONPATH": str(checkout)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_default_database_is_the_checkouts_wherever_a_command_runs(tmp_path: Path) -> None:
    checkout = _checkout_copy(tmp_path / "checkout")

    migrated = _ledgerctl(checkout, checkout / "alembic", "migrate")
    audited = _ledgerctl(checkout, checkout / "cli", "audit")

    assert migrated.returncode == 0, migrated.stderr
    assert str(checkout / "ledger.db") in migrated.stdout
    assert audited.returncode == 0, audited.stderr  # the same, migrated, database
    assert [p.name for p in checkout.rglob("*.db")] == ["ledger.db"]


def test_the_default_url_names_the_checkouts_file() -> None:
    settings = DatabaseSettings.model_construct()
    assert settings.url == f"sqlite+aiosqlite:///{PROJECT_ROOT / 'ledger.db'}"
