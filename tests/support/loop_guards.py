"""Two guards that keep the suite honest about asyncio (registered from tests/conftest.py).

- **A blocking call in the event loop fails the test that made it.** Every callback the
  suite's event loop runs is timed (a task's step between two awaits is one callback); one
  that holds the loop for BLOCKED_SECONDS or longer fails the test in whose setup, body or
  teardown it ran. While it still runs, a watchdog thread records the loop thread's stack,
  so the failure names the blocking line, not only the task.
- **A coroutine that is never awaited fails the test that dropped it**, also when it sits
  in a reference cycle that only the garbage collector frees: after each test this runs
  `gc.collect()`, so the "never awaited" RuntimeWarning (an error under
  `filterwarnings = error`) is raised while pytest still reports it with that test.

This is asyncio debug mode's slow-callback report (`loop.slow_callback_duration`) without
debug mode's cost: debug mode also records a stack for every callback and coroutine
created, which doubled the time of tests/services (15.5 s to 29.7 s, run back to back).
The timing wraps `asyncio.Handle._run`, the one method every callback goes through (and
the one debug mode times); it is private, so a Python that changes it fails here at once.

BLOCKED_SECONDS is well above the longest callback the suite makes legitimately on the
loaded 2-core machines it runs on, and below any blocking call worth finding (a
`time.sleep`, a sync driver call waiting on a lock, a hash over megabytes). What counts is
the time the callback itself took: on Linux the time its thread spent runnable but waiting
for a CPU (the kernel's schedstat run delay) is taken off, because on a machine loaded
several times over a short callback can last a second of wall time without blocking
anything (seen in CI: 1.00 s and 1.18 s, no blocking frame).
`LOOP_GUARD_SECONDS=0.05 LOOP_GUARD_REPORT_ONLY=1` lists every callback of the run above
50 ms instead of failing: how the threshold was chosen, and how to re-check it.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field
from typing import Any, Final

import pytest

BLOCKED_SECONDS: Final = float(os.environ.get("LOOP_GUARD_SECONDS", "1.0"))
REPORT_ONLY: Final = os.environ.get("LOOP_GUARD_REPORT_ONLY") == "1"


def _run_delay(native_id: int) -> float | None:
    """Seconds thread `native_id` has waited, runnable, for a CPU; None off Linux."""
    try:
        with open(f"/proc/self/task/{native_id}/schedstat", encoding="ascii") as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Watchdog:
    """Times every callback of one event loop; keeps those that took `seconds` or more."""

    seconds: float
    found: list[str] = field(default_factory=list)
    # Every slow callback of the run: (seconds, test, callback).
    everything: list[tuple[float, str, str]] = field(default_factory=list)
    current: str = ""
    _loop_thread: int | None = None
    _loop_native_id: int = 0
    # (when, the loop thread's run delay then), sampled by the watchdog thread.
    _delays: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=100_000))
    _started: float | None = None  # when the callback running now started
    _stack: tuple[float, str] | None = None  # (that start, its stack) once it ran long
    _stop: threading.Event = field(default_factory=threading.Event)

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Time the callbacks of `loop`, which runs on this thread, until `stop()`."""
        self._loop_thread = threading.get_ident()
        self._loop_native_id = threading.get_native_id()
        run = asyncio.Handle._run
        watchdog = self

        def timed_run(handle: asyncio.Handle) -> None:
            if threading.get_ident() != watchdog._loop_thread:
                return run(handle)  # another thread's loop (the CLI's, a server's)
            started = watchdog._started = time.monotonic()
            try:
                return run(handle)
            finally:
                watchdog._started = None
                elapsed = time.monotonic() - started
                if elapsed >= watchdog.seconds:
                    watchdog._slow(handle, started, elapsed)

        setattr(asyncio.Handle, "_run", timed_run)  # noqa: B010 (a private method on purpose)
        self._restore: Any = run
        threading.Thread(target=self._sample, daemon=True).start()

    def stop(self) -> None:
        setattr(asyncio.Handle, "_run", self._restore)  # noqa: B010
        self._stop.set()

    def _sample(self) -> None:
        """Record the loop thread's stack once its current callback has run `seconds`."""
        while not self._stop.wait(self.seconds / 10):
            delay = _run_delay(self._loop_native_id)
            if delay is not None:
                self._delays.append((time.monotonic(), delay))
            started = self._started
            if started is None or time.monotonic() - started < self.seconds:
                continue
            if self._stack is None or self._stack[0] != started:
                frame = sys._current_frames().get(self._loop_thread or -1)
                frames = traceback.extract_stack(frame) if frame is not None else []
                # From the callback on, not the loop's and pytest's frames beneath it.
                ends = [i for i, f in enumerate(frames) if f.filename.endswith("asyncio/events.py")]
                if self._started == started:  # still the same callback: the stack is its
                    stack = "".join(
                        traceback.format_list(frames[ends[-1] + 1 :] if ends else frames)
                    )
                    self._stack = (started, stack)

    def _waited_for_a_cpu(self, started: float) -> float:
        """How long the loop thread waited for a CPU since `started` (at most), or 0."""
        now = _run_delay(self._loop_native_id)
        samples = tuple(self._delays)  # one step under the GIL while the watchdog appends
        before = next((delay for when, delay in reversed(samples) if when <= started), None)
        return max(0.0, now - before) if now is not None and before is not None else 0.0

    def _slow(self, handle: asyncio.Handle, started: float, elapsed: float) -> None:
        # As debug mode's report does: a task's step is named by its task.
        task = getattr(getattr(handle, "_callback", None), "__self__", None)
        name = repr(task) if isinstance(task, asyncio.Task) else repr(handle)
        waited = self._waited_for_a_cpu(started)
        self.everything.append((elapsed, self.current, name[:200]))
        if elapsed - waited < self.seconds:
            return  # slow because the machine was busy, not because the callback blocked
        stack = self._stack[1] if self._stack and self._stack[0] == started else ""
        where = f"; after {self.seconds:g}s its thread was at:\n{stack}" if stack else ""
        waiting = f" ({waited:.2f}s of it waiting for a CPU)" if waited else ""
        self.found.append(f"{name} held the event loop for {elapsed:.2f}s{waiting}{where}")

    def take(self) -> list[str]:
        found, self.found = self.found, []
        return found


_watchdog = Watchdog(BLOCKED_SECONDS)


@pytest.fixture(scope="session", autouse=True)
async def _watch_the_event_loop() -> AsyncIterator[None]:
    _watchdog.watch(asyncio.get_running_loop())
    yield
    _watchdog.stop()


def _check(item: pytest.Item, when: str) -> None:
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
    _check(item, "setup")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    yield
    # Frees what only the collector can (a dropped coroutine in a cycle): its "never
    # awaited" warning is raised now and reported with this test, not a later one.
    gc.collect()
    _check(item, "the test")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    yield
    _check(item, "teardown")
    _collect_and_freeze()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORT_ONLY or not _watchdog.everything:
        return
    terminalreporter.section("slow event-loop callbacks (LOOP_GUARD_REPORT_ONLY)")
    for seconds, test, where in sorted(_watchdog.everything, reverse=True)[:30]:
        terminalreporter.write_line(f"{seconds:.3f}s {test} {where.strip()}")
