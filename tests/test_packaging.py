"""Building the project, as `make demo` and `pip install .` do, prints none of the build
backend's own warnings about this project's metadata."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.paths import PROJECT_ROOT

_NOT_SOURCES = shutil.ignore_patterns(
    ".venv", ".git", "__pycache__", ".*_cache", "*.db", "*.db-*", "build", "*.egg-info"
)


def test_building_the_wheel_prints_no_build_backend_warning(tmp_path: Path) -> None:
    sources = tmp_path / "src"
    shutil.copytree(PROJECT_ROOT, sources, ignore=_NOT_SOURCES)

    built = subprocess.run(
        [
            sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
            "--no-index", "--wheel-dir", str(tmp_path / "wheels"), str(sources),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip

    assert built.returncode == 0, built.stderr
    output = built.stdout + built.stderr
    assert "BuildBackendWarning" not in output, output
    assert "SetuptoolsDeprecationWarning" not in output, output
