"""Blocking the event loop: one slow synchronous call stalls every request in the process.

An event loop runs one callback at a time. A handler that calls `time.sleep`, a blocking
driver (sqlite3, psycopg, requests) or a CPU-heavy hash (bcrypt, pbkdf2) does not yield:
for its whole duration no other request makes progress, however little it needs. Nothing
fails, so the mistake survives until load makes it visible as latency. asyncio's debug
mode (`PYTHONASYNCIODEBUG=1`, or `asyncio.run(..., debug=True)`) logs every callback that
holds the loop longer than `loop.slow_callback_duration` and names it; this project's test
suite runs a cheaper watchdog that fails the test (tests/support/loop_guards.py).

The fix: run blocking work in a thread (`asyncio.to_thread`), where it waits without
holding the loop, or use the async driver (this project's engines are aiosqlite and
asyncpg), so that waiting on the database is an `await`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Coroutine
from typing import Any

from examples.scratch import Sessions, fix, funded_accounts, pitfall, scratch_ledger
from services import AccountService

BLOCKING_SECONDS = 0.3  # a sync driver call waiting on a lock, a password hash ...


def blocking_work() -> None:
    time.sleep(BLOCKING_SECONDS)


async def blocking_handler() -> None:
    blocking_work()  # the bug: a synchronous call on the event loop


async def threaded_handler() -> None:
    await asyncio.to_thread(blocking_work)


async def slowest_read(
    sessions: Sessions, account: int, handler: Callable[[], Coroutine[Any, Any, None]]
) -> float:
    """Seconds the slowest of a stream of small reads took while `handler` ran beside them."""
    accounts = AccountService(sessions)
    latencies: list[float] = []

    async def reads() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await accounts.get(account)
            latencies.append(time.perf_counter() - started)

    done = asyncio.Event()
    reader = asyncio.create_task(reads())
    await asyncio.sleep(0.05)  # the reads are flowing
    await asyncio.create_task(handler())  # a server runs each request in a task
    done.set()
    await reader
    return max(latencies)


class SlowCallbacks(logging.Handler):
    """Keeps debug mode's "Executing <Task ...> took 0.301 seconds" reports."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reports: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("Executing"):
            self.reports.append(record.getMessage())


async def main() -> None:
    async with scratch_ledger() as (_, sessions):
        (account,) = await funded_accounts(sessions, count=1)
        loop = asyncio.get_running_loop()
        reports = SlowCallbacks()
        logging.getLogger("asyncio").addHandler(reports)
        loop.set_debug(True)
        loop.slow_callback_duration = BLOCKING_SECONDS / 2
        try:
            blocked = await slowest_read(sessions, account, blocking_handler)
        finally:
            loop.set_debug(False)
            logging.getLogger("asyncio").removeHandler(reports)
        threaded = await slowest_read(sessions, account, threaded_handler)

        pitfall(
            f"a {BLOCKING_SECONDS * 1000:.0f} ms blocking call in one handler held every other "
            f"request: the slowest concurrent read took {blocked * 1000:.0f} ms"
        )
        mine = (r for r in reports.reports if "blocking_handler" in r)
        named = [m for r in mine if (m := re.search(r"coro=<(\w+)\(.* (took .*)", r))]
        report = f"<Task coro={named[0][1]}()> {named[0][2]}" if named else "(none)"
        pitfall(f"debug mode's slow-callback report names it: {report}")
        fix(
            f"with asyncio.to_thread the slowest read took {threaded * 1000:.0f} ms "
            f"({blocked / threaded:.0f}x less) while the same call ran"
        )


if __name__ == "__main__":
    asyncio.run(main())
