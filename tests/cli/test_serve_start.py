"""`ledgerctl serve` before it serves: a port in use and a Ctrl-C during start-up, with
real processes and signals sent by pid. Each ends in at most one `ledgerctl: error:` line,
never a traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.cli_process import ledgerctl
from tests.support.paths import PROJECT_ROOT

IMPORT_TIME = "import time:"


@pytest.fixture
def migrated_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    done = ledgerctl(url, "migrate")
    assert done.returncode == 0, done.stderr
    return url


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


def _serve(url: str, *args: str, python: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *python, "-m", "cli", "--database-url", url, "serve", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _imported(module: str) -> Callable[[str], bool]:
    """Whether a line of `python -X importtime` says `module` was imported."""
    return lambda line: IMPORT_TIME in line and line.rsplit("|", 1)[-1].strip() == module


def _printed(text: str) -> Callable[[str], bool]:
    return lambda line: text in line


def _interrupt_once(
    process: subprocess.Popen[str], printed: Callable[[str], bool]
) -> tuple[int, str]:
    """SIGINT as soon as stderr shows a line for which `printed` holds; the exit status
    and all of stderr, without `-X importtime`'s lines."""
    assert process.stderr is not None
    # Not a synchronisation: only a bound on how long a broken start may hang the test.
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    seen: list[str] = []
    try:
        for line in process.stderr:
            seen.append(line)
            if printed(line):
                process.send_signal(signal.SIGINT)
                break
        else:
            raise AssertionError(f"never printed the mark:\n{''.join(seen)}")
        _, rest = process.communicate(timeout=60)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.communicate()
    lines = [line for line in [*seen, *rest.splitlines(True)] if IMPORT_TIME not in line]
    return process.returncode, "".join(lines)


def test_a_port_in_use_is_one_line_before_start_up(migrated_url: str, taken_port: int) -> None:
    process = _serve(migrated_url, "--port", str(taken_port))
    out, err = process.communicate(timeout=120)

    assert process.returncode == 1, err
    assert err.splitlines() == [
        f"ledgerctl: error: cannot listen on 127.0.0.1:{taken_port}: address already in use"
    ]
    assert out == ""


@pytest.mark.parametrize(
    "module",
    [
        # Still importing the command line's modules (the first second of a start).
        "sqlalchemy.orm",
        # In the serve command, before uvicorn took the signals over.
        "uvicorn.config",
    ],
)
def test_ctrl_c_while_starting_is_one_line(migrated_url: str, module: str) -> None:
    process = _serve(migrated_url, "--port", "0", python=("-X", "importtime"))

    code, err = _interrupt_once(process, _imported(module))

    assert "Traceback" not in err
    assert err.splitlines() == ["ledgerctl: error: interrupted"]
    assert code == 1


def test_ctrl_c_during_the_apps_start_up_stops_it_cleanly(migrated_url: str) -> None:
    process = _serve(migrated_url, "--port", "0")

    code, err = _interrupt_once(process, _printed("Waiting for application startup."))

    assert "Traceback" not in err
    assert "Finished server process" in err
    assert code == 0
