"""Two guards that keep the suite honest about asyncio (registered from tests/conftest.py).

- **A blocking call in the event loop fails the test that made it.** A watchdog thread
  watches the suite's event loop: the loop beats (a `call_later` callback) every
  BLOCKED_SECONDS / 20, the thread looks every BLOCKED_SECONDS / 10, and when the loop
  stays running without a beat for BLOCKED_SECONDS, one
  iteration of the loop (one callback, or one batch of ready callbacks) held it that long.
  The watchdog records the loop thread's stack at that moment, which names the blocking
  call, and the test in whose setup, body or teardown it happened fails with it.
- **A coroutine that is never awaited fails the test that dropped it**, also when it sits
  in a reference cycle that only the garbage collector frees: after each test this runs
  `gc.collect()`, so the "never awaited" RuntimeWarning (an error under
  `filterwarnings = error`) is raised while pytest still reports it with that test.

Why not asyncio debug mode, which reports slow callbacks itself: it records a stack for
every callback and coroutine, which doubled the time of tests/services (15.5 s to 29.7 s in
one run); the watchdog costs nothing measurable. BLOCKED_SECONDS is well above the longest
iteration the suite makes legitimately on the loaded 2-core machines it runs on, and below
any blocking call worth finding (a `time.sleep`, a sync driver call waiting on a lock, a
hash over megabytes). `LOOP_GUARD_SECONDS=0.05 LOOP_GUARD_REPORT_ONLY=1` lists what the
run did above 50 ms instead of failing: how the threshold was chosen, and how to re-check it.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field
from typing import Final

import pytest

BLOCKED_SECONDS: Final = float(os.environ.get("LOOP_GUARD_SECONDS", "1.0"))
REPORT_ONLY: Final = os.environ.get("LOOP_GUARD_REPORT_ONLY") == "1"


@dataclass
class Watchdog:
    """Finds the event loop stuck in one iteration for `seconds`, and where."""

    seconds: float
    found: list[str] = field(default_factory=list)
    # Every episode that reached `seconds`, with its whole length: (seconds, test, where).
    everything: list[tuple[float, str, str]] = field(default_factory=list)
    current: str = ""
    _beats: int = 0
    _loop_thread: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Beat on `loop` and watch it from a daemon thread until `stop()`."""
        period = self.seconds / 10

        def beat() -> None:
            self._loop_thread = threading.get_ident()
            self._beats += 1
            loop.call_later(period / 2, beat)

        loop.call_soon(beat)
        threading.Thread(target=self._run, args=(loop, period), daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self, loop: asyncio.AbstractEventLoop, period: float) -> None:
        seen = -1
        stuck_since: float | None = None
        where = ""
        while not self._stop.wait(period):
            beats = self._beats
            now = time.monotonic()
            # A loop that is not running (between tests) is not stuck, whatever its timers.
            if beats != seen or not loop.is_running():
                if stuck_since is not None and now - stuck_since >= self.seconds:
                    self.everything.append((now - stuck_since, self.current, where))
                seen, stuck_since = beats, None
                continue
            if stuck_since is None:
                stuck_since = now - period  # no beat since the previous tick, at least
                where = ""
            if not where and now - stuck_since >= self.seconds:
                stack = self._stack()
                where = (stack.strip().splitlines()[-2:][:1] or ["?"])[0].strip()
                self.found.append(
                    f"the event loop made no progress for {now - stuck_since:.2f}s; "
                    f"its thread was at:\n{stack}"
                )

    def _stack(self) -> str:
        frame = sys._current_frames().get(self._loop_thread or -1)
        frames = traceback.extract_stack(frame) if frame is not None else []
        # From the callback the loop was running, not the loop's and pytest's own frames.
        starts = [i for i, f in enumerate(frames) if f.filename.endswith("asyncio/events.py")]
        return "".join(traceback.format_list(frames[starts[-1] + 1 if starts else 0 :]))

    def take(self) -> list[str]:
        found, self.found = self.found, []
        return found


_watchdog = Watchdog(BLOCKED_SECONDS)


@pytest.fixture(scope="session", autouse=True)
async def _watch_the_event_loop() -> AsyncIterator[None]:
    _watchdog.watch(asyncio.get_running_loop())
    yield
    _watchdog.stop()


def _check(when: str) -> None:
    found = _watchdog.take()
    if found and not REPORT_ONLY:
        pytest.fail(
            f"the event loop was blocked during {when} (longer than {BLOCKED_SECONDS:g}s; "
            "tests/support/loop_guards.py): " + "\n".join(found),
            pytrace=False,
        )


def _collect_and_freeze() -> None:
    # What is still alive once a test and its fixtures are done (modules, session fixtures,
    # caches) is most of the heap and stays: moved out of the collector's sight, the full
    # collection after the next test walks only what that test made (milliseconds instead
    # of a quarter second per test, measured on tests/services).
    gc.collect()
    gc.freeze()


def pytest_collection_finish(session: pytest.Session) -> None:
    _collect_and_freeze()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    _watchdog.current = item.nodeid
    _watchdog.take()  # anything before this test is not its fault
    yield
    _check("setup")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    yield
    # Frees what only the collector can (a dropped coroutine in a cycle): its "never
    # awaited" warning is raised now and reported with this test, not a later one.
    gc.collect()
    _check("the test")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    yield
    _check("teardown")
    _collect_and_freeze()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORT_ONLY or not _watchdog.everything:
        return
    terminalreporter.section("event loop stuck (LOOP_GUARD_REPORT_ONLY)")
    for seconds, test, where in sorted(_watchdog.everything, reverse=True)[:30]:
        terminalreporter.write_line(f"{seconds:.3f}s {test} {where.strip()}")
