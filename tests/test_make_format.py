"""`make format` fixes what ruff can fix, a line too long included: the formatter runs
before `ruff check --fix`, which would otherwise stop make at E501."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.paths import PROJECT_ROOT

LONG_RETURN = (
    "    return greeting + ', ' + title + ' ' + first_name + ' ' + last_name"
    " + p + os.sep + sys.platform\n"
)
UNFORMATTED = (
    "import sys\nimport os\n\n\n"
    "def greet(first_name: str, last_name: str, title: str, greeting: str, p: str) -> str:\n"
    + LONG_RETURN
)


def test_make_format_wraps_a_long_line_and_leaves_the_file_lint_clean(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        raise AssertionError("make is required to run the project's Makefile")
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(PROJECT_ROOT / name, tmp_path / name)
    source = tmp_path / "greeting.py"
    source.write_text(UNFORMATTED)
    # This interpreter's ruff; -o: take the install stamp as made (the venv is not copied).
    bin_dir = Path(sys.executable).parent
    done = subprocess.run(
        ["make", "-o", ".venv/.installed-stamp", "format", f"BIN={bin_dir}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    lint = subprocess.run(
        [bin_dir / "ruff", "check", "--no-cache", str(source)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout
