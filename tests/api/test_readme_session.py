"""The README's curl session works as printed: each command, run in order against a real
`ledgerctl serve` on a new SQLite file, prints what the README says it prints (timestamps
and the server's process id aside)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.api_server import free_port
from tests.support.databases import IN_CI
from tests.support.paths import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
SESSION = re.compile(r"## The HTTP API in one screen\n.*?```console\n(.*?)```", re.DOTALL)
MARK = "@@@ next command @@@"
# What differs from run to run, however correct the run.
VARYING = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"), "<time>"),
    (re.compile(r"server process \[\d+\]"), "server process [<pid>]"),
]


def _session() -> list[tuple[str, list[str]]]:
    """The README's session as (command, the lines it printed) pairs."""
    found = SESSION.search(README.read_text(encoding="utf-8"))
    assert found, "README.md has no console block under 'The HTTP API in one screen'"
    steps: list[tuple[str, list[str]]] = []
    for line in found.group(1).splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"output before the first command: {line!r}"
            steps[-1][1].append(line)
    return steps


def _normal(lines: list[str]) -> list[str]:
    for pattern, stand_in in VARYING:
        lines = [pattern.sub(stand_in, line) for line in lines]
    return lines


def _on_port(command: str, port: str) -> str:
    return command.replace("localhost:8000", f"localhost:{port}").replace(
        "--port 8000", f"--port {port}"
    )


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        reason = f"the README session needs `{tool}` (apt-get install -y {tool})"
        if IN_CI:
            pytest.fail(f"CI requires {tool}: {reason}", pytrace=False)
        pytest.skip(reason)


def test_the_readme_curl_session_prints_what_the_readme_shows(tmp_path: Path) -> None:
    for tool in ("bash", "curl", "jq"):
        _require(tool)
    steps = _session()
    port = str(free_port())  # the README's 8000 may be taken on the machine running the suite
    script = "\n".join(f"echo '{MARK}'\n{_on_port(command, port)}" for command, _ in steps)
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "DATABASE_URL": "sqlite+aiosqlite:///ledger.db",
            "PYTHONPATH": str(PROJECT_ROOT),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    printed = done.stdout.split(f"{MARK}\n")[1:]
    assert len(printed) == len(steps), done.stdout + done.stderr
    for (command, expected), output in zip(steps, printed, strict=True):
        assert _normal(output.splitlines()) == _normal(expected), command
