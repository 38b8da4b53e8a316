"""Every example runs, as a reader would run it, and still shows what it says it shows.

One subprocess per example (`python -m examples.<name>` from the checkout), judged by the
verdict lines it prints: the pitfall must still go wrong, and the project's way must
still work. Figures are checked only where the pitfall guarantees them (a read queued
behind a 300 ms blocking call waits at least that long); the rest are reported, not timed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.support.databases import IN_CI, POSTGRES_URL
from tests.support.paths import PROJECT_ROOT

Check = Callable[[str], None]


def number(pattern: str, output: str) -> float:
    """The number the first group of `pattern` captured in `output`."""
    found = re.search(pattern, output)
    assert found is not None, f"{pattern!r} not in:\n{output}"
    return float(found[1])


def has(*patterns: str) -> Check:
    def check(output: str) -> None:
        for pattern in patterns:
            assert re.search(pattern, output), f"{pattern!r} not in:\n{output}"

    return check


def blocking(output: str) -> None:
    blocked = number(r"slowest concurrent read took (\d+) ms", output)
    threaded = number(r"with asyncio.to_thread the slowest read took (\d+) ms", output)
    assert blocked >= 290  # it was queued behind the whole 300 ms call
    assert threaded < blocked
    has(r"report names it: <Task coro=blocking_handler\(\)> took 0\.\d+ seconds")(output)


def shared_session(output: str) -> None:
    assert number(r"(\d) of 4 queries refused: .*concurrent operations are not permitted", output)
    has(r"fix: .*4 of 4 accounts read concurrently, 40000 in all")(output)


def pool(output: str) -> None:
    assert number(r"(\d+) failed: connection pool exhausted: all 3 connections", output) >= 1
    assert number(r"sync deadlock: .*: (\d) of 2 failed", output) >= 1
    has(r"fix: .*8 of 8 succeeded", r"fix: .*2 of 2 succeeded")(output)


def locked(output: str) -> None:
    # At once: far sooner than the 5 s busy_timeout that waiting would have used.
    assert number(r"BEGIN DEFERRED: failed after (\d+) ms: database is locked", output) < 2_500
    has(r"fix: +BEGIN IMMEDIATE: committed and committed; balance 700")(output)


def sync_faster(output: str) -> None:
    async_ms = number(r"(\d+) ms as plain SQL on the async engine", output)
    sync_ms = number(r"the same reads in sync sqlite3: (\d+) ms", output)
    assert sync_ms < async_ms


@dataclass(frozen=True)
class Example:
    name: str
    check: Check
    needs_postgres: bool = False


EXAMPLES = (
    Example(
        "forgetting_await",
        has(
            r"pitfall: deposit\(\) without await wrote nothing: balance 1000",
            r"raised instead: RuntimeWarning\(\"coroutine 'AccountService.deposit' was never",
            r"fix: +awaited, the deposit runs: balance 1500",
        ),
    ),
    Example("blocking_the_loop", blocking),
    Example(
        "lazy_loading",
        has(
            r"after commit: MissingGreenlet",
            r"'User.accounts' is not available due to lazy='raise'",
            r"fix: .*user.accounts holds 2",
            r"fix: .*AccountRecord.balance = 10000",
        ),
    ),
    Example("shared_session_gather", shared_session),
    Example(
        "cancellation_leak",
        has(
            r"pitfall: .*keeps its connection: checked out 0 before, 1 after",
            r"fix: .*OperationTimeout after 0\.\d+s, checked out 0 before, 0 after",
        ),
    ),
    Example("pool_exhaustion", pool),
    Example("sqlite_locked", locked),
    Example(
        "loop_bound_engine",
        has(r"first passed, second failed", r"fix: .*passed and passed"),
        needs_postgres=True,
    ),
    Example("async_where_sync_would_do", sync_faster),
)


def test_every_example_is_run_here() -> None:
    modules = {p.stem for p in (PROJECT_ROOT / "examples").glob("*.py")}
    assert modules - {"__init__", "scratch"} == {e.name for e in EXAMPLES}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_the_example_shows_its_pitfall_and_the_fix(example: Example) -> None:
    environment = {**os.environ, "EXAMPLES_POSTGRES_URL": POSTGRES_URL}
    ran = subprocess.run(
        [sys.executable, "-m", f"examples.{example.name}"],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stderr, ran.stderr
    if example.needs_postgres and ran.stdout.startswith("skipped:"):
        if IN_CI:
            pytest.fail(f"CI requires PostgreSQL: {ran.stdout}", pytrace=False)
        pytest.skip(ran.stdout.strip())
    example.check(ran.stdout)
