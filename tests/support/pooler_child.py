"""One app process of tests/reliability/test_pgbouncer_processes.py.

    python -m tests.support.pooler_child ACCOUNT_IDS REQUESTS TASKS SEED

Its engine comes from the environment (DATABASE_URL, DB_PG_POOLER, DB_LISTEN_URL,
DB_POOL_SIZE, ...), as a deployed process's would. It first opens its whole pool at once,
so PgBouncer holds that many client connections from it, then sends REQUESTS transfers
between the comma-separated ACCOUNT_IDS from TASKS concurrent tasks, and prints one JSON
line: how many were answered (done or refused for funds), how many moved money, the
errors of the rest, and the peak of connections checked out of its pool.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections import Counter

from db import DatabaseSettings, EngineMonitor, create_engine, create_session_factory
from services import TransferService
from services.errors import InsufficientFunds


async def run(accounts: list[int], requests: int, tasks: int, seed: int) -> dict[str, object]:
    """Do the work; the report printed by `main`."""
    settings = DatabaseSettings.from_env()
    engine = create_engine(settings)
    transfers = TransferService(create_session_factory(engine))
    rng = random.Random(seed)
    plan = [(*rng.sample(accounts, 2), rng.randint(1, 50)) for _ in range(requests)]
    pending = iter(plan)
    answered = moved = 0
    errors: Counter[str] = Counter()

    async def client() -> None:
        nonlocal answered, moved
        for source, destination, amount in pending:
            try:
                await transfers.transfer(source, destination, amount)
            except InsufficientFunds:
                answered += 1
            except Exception as exc:  # reported to the parent, which fails on any
                errors[f"{type(exc).__name__}: {exc}".splitlines()[0]] += 1
            else:
                answered += 1
                moved += 1

    try:
        with EngineMonitor(engine) as monitor:
            held = [await engine.connect() for _ in range(settings.pool_size)]
            for connection in held:
                await connection.close()
            await asyncio.gather(*(client() for _ in range(tasks)))
    finally:
        await engine.dispose()
    return {
        "answered": answered,
        "moved": moved,
        "errors": dict(errors),
        "peak_checked_out": monitor.peak_checked_out,
    }


def main() -> None:
    """Entry point: parse the arguments, run, print the report."""
    ids, requests, tasks, seed = sys.argv[1:5]
    accounts = [int(part) for part in ids.split(",")]
    report = asyncio.run(run(accounts, int(requests), int(tasks), int(seed)))
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
