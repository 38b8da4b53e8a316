"""The suite's asyncio guards (tests/support/loop_guards.py) fail the test that broke the
rule, and only that one: shown on a small suite run with and without them.

Automatic garbage collection is off in these runs, so a coroutine left in a reference
cycle is found by the guard's own collection or not at all: the guarded run shows the
guard does not depend on the collector happening to run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

from tests.support.paths import PROJECT_ROOT

CONFTEST: Final = """
import gc
import os

gc.disable()  # only an explicit collection frees a cycle in this run
pytest_plugins = ["tests.support.loop_guards"] if os.environ.get("GUARDED") == "1" else []
"""
INI: Final = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = session
asyncio_default_test_loop_scope = session
filterwarnings = error
"""
# The inner runs' threshold, whatever this run's is.
BLOCKED_SECONDS: Final = 0.5
SUITE: Final = f"""
import asyncio
import os
import subprocess
import sys
import time


async def test_blocks_the_loop() -> None:
    time.sleep({BLOCKED_SECONDS * 1.2})  # the deliberate blocking call


async def test_awaits_the_same_wait() -> None:
    await asyncio.sleep({BLOCKED_SECONDS * 1.2})


async def deposit() -> None:
    pass


async def test_drops_a_coroutine_in_a_cycle() -> None:
    cycle: dict[str, object] = {{"coroutine": deposit()}}  # never awaited
    cycle["self"] = cycle


async def test_runs_after_it() -> None:
    await asyncio.sleep(0)


async def test_computes_on_a_cpu_shared_three_ways() -> None:
    cpu, mine = min(os.sched_getaffinity(0)), os.sched_getaffinity(0)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        for hog in hogs:
            os.sched_setaffinity(hog.pid, {{cpu}})
        os.sched_setaffinity(0, {{cpu}})
        started, computed = time.monotonic(), time.thread_time()
        while time.thread_time() - computed < {BLOCKED_SECONDS * 0.6}:
            pass  # computing, not blocking; the busy CPU makes it slow
        assert time.monotonic() - started >= {BLOCKED_SECONDS}, "the CPU was not shared"
    finally:
        os.sched_setaffinity(0, mine)
        for hog in hogs:
            hog.kill()
            hog.wait()
"""


Run = tuple[dict[str, str], str]


def outcomes(tmp_path: Path, *, guarded: bool) -> Run:
    """Each test's outcome ('passed', 'failed', 'error') in a run, and the run's output."""
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "pytest.ini").write_text(INI)
    (tmp_path / "test_suite.py").write_text(SUITE)
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "GUARDED": str(int(guarded))}
    environment.pop("LOOP_GUARD_REPORT_ONLY", None)
    environment["LOOP_GUARD_SECONDS"] = str(BLOCKED_SECONDS)
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:randomly", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found: dict[str, str] = {}
    summary = re.findall(r"^(PASSED|FAILED|ERROR) test_suite.py::(\w+)", ran.stdout, re.M)
    for outcome, test in summary:
        found[test] = "passed" if outcome == "PASSED" and test not in found else outcome.lower()
    return found, ran.stdout


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return outcomes(tmp_path_factory.mktemp("guarded"), guarded=True)


def test_without_the_guards_both_mistakes_pass(tmp_path: Path) -> None:
    found, output = outcomes(tmp_path, guarded=False)
    assert found["test_blocks_the_loop"] == "passed", output
    assert found["test_drops_a_coroutine_in_a_cycle"] == "passed", output


def test_a_blocking_call_fails_its_test_and_is_named(guarded: Run) -> None:
    found, output = guarded
    assert found["test_blocks_the_loop"] == "failed", output
    assert "test_blocks_the_loop() done" in output  # the task, as debug mode names it
    assert "held the event loop for 0." in output
    assert "time.sleep(" in output  # the watchdog's stack names the blocking line
    assert found["test_awaits_the_same_wait"] == "passed", output


def test_a_coroutine_never_awaited_fails_its_test_and_no_other(guarded: Run) -> None:
    found, output = guarded
    assert found["test_drops_a_coroutine_in_a_cycle"] == "error", output
    assert "coroutine 'deposit' was never awaited" in output
    assert found["test_runs_after_it"] == "passed", output


@pytest.mark.skipif(
    not Path(f"/proc/self/task/{os.getpid()}/schedstat").exists(),
    reason="the kernel's run delay (/proc/.../schedstat) is Linux's",
)
def test_a_callback_slowed_only_by_a_busy_machine_passes(guarded: Run) -> None:
    found, output = guarded
    assert found["test_computes_on_a_cpu_shared_three_ways"] == "passed", output
