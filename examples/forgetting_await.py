"""Forgetting `await`: the call returns a coroutine object and nothing runs.

`accounts.deposit(...)` without `await` builds a coroutine and drops it: no SQL is sent,
nothing is written, and the only trace is a RuntimeWarning printed when the coroutine is
garbage collected, possibly much later and far from the line that forgot. This project
makes the mistake loud in three places: mypy --strict refuses the line
([unused-coroutine]), ruff's ASYNC rules flag several forms of it, and the test suite runs
with `filterwarnings = error`, so the warning becomes an error in the test that caused it
(tests/support/loop_guards.py runs the collector after each test, so a coroutine caught in
a reference cycle is found there too, not in some later test).
"""

from __future__ import annotations

import asyncio
import sys
import warnings

from examples.scratch import fix, funded_accounts, pitfall, scratch_ledger
from services import AccountService


async def main() -> None:
    async with scratch_ledger() as (_, sessions):
        (account,) = await funded_accounts(sessions, count=1, balance=1_000)
        accounts = AccountService(sessions)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            accounts.deposit(account, 500)  # type: ignore[unused-coroutine]  # the bug
        balance = await accounts.balance(account)
        warning = next(str(w.message) for w in caught if w.category is RuntimeWarning)
        pitfall(f"deposit() without await wrote nothing: balance {balance}, not 1500")
        pitfall(f"the only trace is a warning, printed when collected: {warning!r}")

        # What `filterwarnings = error` does with it: the warning is raised as an exception
        # inside the coroutine's finalizer, which Python hands to sys.unraisablehook; pytest
        # turns that into a failure of the running test.
        raised: list[str] = []
        previous = sys.unraisablehook
        sys.unraisablehook = lambda report: raised.append(repr(report.exc_value))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                accounts.deposit(account, 500)  # type: ignore[unused-coroutine]
        finally:
            sys.unraisablehook = previous
        pitfall(f"under filterwarnings = error the warning is raised instead: {raised[0]}")

        await accounts.deposit(account, 500)
        fix(f"awaited, the deposit runs: balance {await accounts.balance(account)}")


if __name__ == "__main__":
    asyncio.run(main())
