"""The README's curl session works as printed, where the README says it runs: after
`make demo`, in the checkout, with nothing on PATH or in DATABASE_URL but what the session
itself sets. Each command, run in order, prints what the README says it prints
(timestamps and the server's process id aside)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.api_server import free_port
from tests.support.cli_process import ledgerctl
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


def _after_make_demo(folder: Path) -> dict[str, str]:
    """`folder` as a checkout after `make demo`: a .venv (this one) and a database the demo
    filled; the environment of a new shell there, whose DATABASE_URL, if the session did
    not set its own, would lead it to that database."""
    (folder / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    venv_bin = str(Path(sys.prefix) / "bin")
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin)
    assert shutil.which("ledgerctl", path=path) is None, "ledgerctl on PATH before activation"
    demo_url = f"sqlite+aiosqlite:///{folder / 'demo.db'}"
    for command in (["migrate"], ["demo", "--transfers", "20", "--users", "10"]):
        filled = ledgerctl(demo_url, *command)
        assert filled.returncode == 0, filled.stderr
    shell = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    return {**shell, "PATH": path, "DATABASE_URL": demo_url, "PYTHONPATH": str(PROJECT_ROOT)}


def test_the_readme_curl_session_prints_what_the_readme_shows(tmp_path: Path) -> None:
    for tool in ("bash", "curl", "jq"):
        _require(tool)
    steps = _session()
    environment = _after_make_demo(tmp_path)
    port = str(free_port())  # the README's 8000 may be taken on the machine running the suite
    # -e: a command that fails (not found, say) ends the session instead of the wait for
    # a server that will never answer.
    script = "set -e\n" + "\n".join(
        f"echo '{MARK}'\n{_on_port(command, port)}" for command, _ in steps
    )
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    printed = done.stdout.split(f"{MARK}\n")[1:]
    assert len(printed) == len(steps), done.stdout + done.stderr
    for (command, expected), output in zip(steps, printed, strict=True):
        assert _normal(output.splitlines()) == _normal(expected), command
