"""The batched write path's throughput, for whichever source tree is first on sys.path:
`python batcher_probe.py URL TRANSFERS CLIENTS` prints {"transfers_per_s": …,
"cpu_us_per_transfer": …}: this process's CPU (every thread's), which load elsewhere on
the machine disturbs less than the elapsed time.

A script rather than a module of the bench, so that it runs unchanged against a baseline
tree (another commit's `services`), which is how the kept totals' cost is measured.
Only public names of the app.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import Iterator

from db import DatabaseSettings, create_engine, create_session_factory, migrations
from services import AccountService, TransferBatcher, UserService

ACCOUNTS = 20
WARM_UP = 1_000


async def probe(url: str, transfers: int, clients: int) -> tuple[float, float]:
    """Transfers per second through one TransferBatcher from `clients` tasks, and this
    process's CPU µs per transfer."""
    engine = create_engine(DatabaseSettings(url=url))
    try:
        await migrations.upgrade(engine)
        sessions = create_session_factory(engine)
        user = await UserService(sessions).register("probe@example.com", "Probe")
        service = AccountService(sessions)
        ids = []
        for _ in range(ACCOUNTS):
            account = await service.open(user.id, "EUR")
            await service.deposit(account.id, 10**12)
            ids.append(account.id)
        rng = random.Random(7)
        async with TransferBatcher(sessions) as batcher:

            async def client(pairs: Iterator[list[int]]) -> None:
                for source, destination in pairs:
                    await batcher.transfer(source, destination, 1)

            # A warm-up first: what a process does once (compiling statements, preparing
            # them on a connection, lazy imports) is not the write path's cost.
            warm_up = iter([rng.sample(ids, 2) for _ in range(WARM_UP)])
            await asyncio.gather(*(client(warm_up) for _ in range(clients)))
            pairs = iter([rng.sample(ids, 2) for _ in range(transfers)])
            started, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(client(pairs) for _ in range(clients)))
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        return transfers / elapsed, cpu / transfers * 1e6
    finally:
        await engine.dispose()


if __name__ == "__main__":
    url, transfers, clients = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rate, cpu_us = asyncio.run(probe(url, transfers, clients))
    print(json.dumps({"transfers_per_s": rate, "cpu_us_per_transfer": cpu_us}))
