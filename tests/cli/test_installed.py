"""A plain (non-editable) `pip install .`: it installs only the library and its CLI, and the
installed `ledgerctl migrate` finds and runs the migrations, far from any checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from db import migrations
from tests.support.paths import PROJECT_ROOT

INSTALLED_PACKAGES = {"api", "cli", "db", "models", "repositories", "services"}
_NOT_SOURCES = shutil.ignore_patterns(
    ".venv", ".git", "__pycache__", ".*_cache", "*.db", "*.db-*", "build", "*.egg-info"
)


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _install(tmp_path: Path) -> Path:
    """Build the wheel from a copy of the sources and install it, without dependencies,
    into a new virtualenv that borrows this one's packages (SQLAlchemy, Alembic...) from
    behind its own site-packages; return that venv's site-packages."""
    sources = tmp_path / "src"
    shutil.copytree(PROJECT_ROOT, sources, ignore=_NOT_SOURCES)
    wheels = tmp_path / "wheels"
    built = _run(
        sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
        "--no-index", "--wheel-dir", wheels, sources, cwd=tmp_path,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr

    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    python = target / "bin" / "python"
    paths = _run(
        python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path
    )
    site_packages = Path(paths.stdout.strip())
    # A path line, not a site dir: this venv's own .pth files (the editable install of the
    # checkout) are not run, so `db` and friends can only come from the wheel.
    (site_packages / "borrowed.pth").write_text(sysconfig.get_path("purelib") + "\n")
    (wheel,) = wheels.glob("*.whl")
    installed = _run(
        sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
        "--no-index", wheel, cwd=tmp_path,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    return site_packages


def test_installed_package_migrates_and_shadows_nothing(tmp_path: Path) -> None:
    site_packages = _install(tmp_path)
    ledgerctl = tmp_path / "venv" / "bin" / "ledgerctl"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    url = f"sqlite+aiosqlite:///{elsewhere / 'installed.db'}"

    top_level = {
        path.name
        for path in site_packages.iterdir()
        if not path.name.endswith((".dist-info", ".pth")) and path.name != "__pycache__"
    }
    assert top_level == INSTALLED_PACKAGES  # no alembic/, lab/, tests/, examples/

    migrated = _run(ledgerctl, "--database-url", url, "migrate", cwd=elsewhere)
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.strip().endswith(f"migrated empty -> {migrations.head_revision()}")

    audited = _run(ledgerctl, "--database-url", url, "audit", cwd=elsewhere)
    assert audited.returncode == 0, audited.stderr
