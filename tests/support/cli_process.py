"""Run ledgerctl as a subprocess, the way a user runs it, and check its one-line errors."""

from __future__ import annotations

import subprocess
import sys

from tests.support.paths import PROJECT_ROOT


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `ledgerctl ARGS...` from the project's folder and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ledgerctl(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `ledgerctl --database-url URL ARGS...` and capture its output."""
    return run_cli("--database-url", url, *args)


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]
