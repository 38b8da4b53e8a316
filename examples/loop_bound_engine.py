"""An engine bound to another event loop: the test suite that fails from its second test on.

An asyncpg connection belongs to the event loop that opened it. pytest-asyncio runs each
test in a loop of its own by default, so a module-level engine (or a session-scoped
engine fixture under function-scoped loops) hands the second test a pooled connection of
the first test's loop: "got Future attached to a different loop", "another operation is
in progress" or "Event loop is closed", depending on timing. Each test passes alone.

This project's way (tests/conftest.py, pyproject's [tool.pytest.ini_options]): one loop
for the whole run (`asyncio_default_fixture_loop_scope` and `asyncio_default_test_loop_scope`
= "session") and engines created by session-scoped fixtures inside it, so an engine never
outlives its loop; with per-test loops, create the engine in a fixture of the same scope.
This example runs each "test" the way pytest-asyncio would, in an `asyncio.Runner` of its
own. It needs PostgreSQL: aiosqlite's connections live on threads, not on a loop.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from examples.scratch import fix, pitfall, postgres_engine


async def a_test(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


def run_in_its_own_loop(engine: AsyncEngine) -> str:
    """One test, run as pytest-asyncio runs it with function-scoped loops."""
    with asyncio.Runner() as runner:
        try:
            runner.run(a_test(engine))
        except (RuntimeError, DBAPIError) as error:
            message = str(getattr(error, "orig", None) or error).splitlines()[0]
            if "attached to a different loop" in message:
                message = "got Future attached to a different loop"
            return f"failed ({message})"
        return "passed"


def with_its_own_engine() -> str:
    """The same test with the engine made, and disposed of, inside the test's loop."""

    async def test() -> str:
        engine = await postgres_engine(pool_size=1, max_overflow=0)
        if engine is None:
            return "skipped"
        try:
            await a_test(engine)
        finally:
            await engine.dispose()
        return "passed"

    return asyncio.run(test())


async def module_level_engine() -> AsyncEngine | None:
    """The engine a test module builds at import (here checked to answer, then emptied)."""
    engine = await postgres_engine(pool_size=1, max_overflow=0)
    if engine is not None:
        await engine.dispose()  # the pool starts empty: the first test opens its connection
    return engine


def main() -> None:
    engine = asyncio.run(module_level_engine())
    if engine is None:
        return
    # The pool also logs its failed attempts to close a connection of a closed loop.
    logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)
    first, second = run_in_its_own_loop(engine), run_in_its_own_loop(engine)
    pitfall(f"one engine shared by two tests, each in its own loop: first {first}, second {second}")
    # Its connection belongs to a closed loop: drop the pool without closing it there.
    asyncio.run(engine.dispose(close=False))

    outcomes = [with_its_own_engine() for _ in range(2)]
    fix(f"an engine per loop (a fixture of the loop's scope): {' and '.join(outcomes)}")


if __name__ == "__main__":
    main()
