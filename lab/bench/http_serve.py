"""How `ledgerctl serve` with 1, 2, 4 worker processes does on one SQLite file.

    python -m lab.bench.http_serve [--transfers 2000] [--concurrency 64] [--workers 1 2 4]

Each run: a new SQLite file, 20 users with a funded account, then the transfers sent
over HTTP at the given concurrency, each with its own Idempotency-Key. Every worker has
its own batcher; on SQLite they take turns on the one write lock. Prints throughput,
statuses and the batcher's figures as scraped from /metrics (of the worker that
answered the scrape). Not a test: nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from db import DatabaseSettings, create_engine, create_session_factory, migrations
from services import SYSTEM, AccessService, AccountService, LedgerAuditor

ROOT = Path(__file__).resolve().parents[2]


async def _prepare(url: str, users: int) -> tuple[list[str], list[int]]:
    engine = create_engine(DatabaseSettings(url=url))
    try:
        await migrations.upgrade(engine)
        sessions = create_session_factory(engine)
        tokens, accounts = [], []
        for n in range(users):
            made = await AccessService(sessions, caller=SYSTEM).register(f"u{n}@example.com", "U")
            account = await AccountService(sessions).open(made.user.id, "EUR")
            await AccountService(sessions).deposit(account.id, 10**9)
            tokens.append(made.token)
            accounts.append(account.id)
        return tokens, accounts
    finally:
        await engine.dispose()


async def _audit(url: str) -> bool:
    engine = create_engine(DatabaseSettings(url=url))
    try:
        return (await LedgerAuditor(create_session_factory(engine)).verify()).ok
    finally:
        await engine.dispose()


async def run(workers: int, transfers: int, concurrency: int) -> str:
    """One measurement."""
    folder = tempfile.mkdtemp(prefix="http-serve-")
    url = f"sqlite+aiosqlite:///{folder}/ledger.db"
    tokens, accounts = await _prepare(url, 20)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "--database-url", url, "serve", "--port", str(port),
        "--workers", str(workers), "--no-access-log",
        cwd=ROOT, env={**os.environ, "API_REQUEST_TIMEOUT": "60"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    started = 0
    while started < workers:
        line = await process.stdout.readline()
        if not line:
            raise RuntimeError("the server did not start")
        started += b"Application startup complete." in line
    statuses: Counter[int] = Counter()
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=120
    ) as http:

        async def one(n: int) -> None:
            who = n % len(tokens)
            body = {
                "source_account_id": accounts[who],
                "destination_account_id": accounts[(who + 1) % len(accounts)],
                "amount": 1,
            }
            headers = {"Authorization": f"Bearer {tokens[who]}", "Idempotency-Key": f"b-{n}"}
            async with gate:
                statuses[
                    (await http.post("/transfers", json=body, headers=headers)).status_code
                ] += 1

        began = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(transfers)))
        elapsed = time.perf_counter() - began
        metrics = (await http.get("/metrics")).text
    process.send_signal(signal.SIGTERM)
    await process.communicate()
    count = re.search(r"^ledger_batcher_batch_size_count (\S+)", metrics, re.M)
    total = re.search(r"^ledger_batcher_batch_size_sum (\S+)", metrics, re.M)
    batches = float(count.group(1)) if count else 0.0
    mean = float(total.group(1)) / batches if count and total and batches else 0.0
    return (
        f"workers={workers}: {transfers} transfers at concurrency {concurrency} in "
        f"{elapsed:.2f}s = {transfers / elapsed:.0f}/s; statuses {dict(statuses)}; "
        f"scraped worker: {batches:.0f} batches, mean size {mean:.1f}; "
        f"audit {'ok' if await _audit(url) else 'FAILED'}; exit {process.returncode}"
    )


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transfers", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    for workers in args.workers:
        print(asyncio.run(run(workers, args.transfers, args.concurrency)), flush=True)


if __name__ == "__main__":
    main()
