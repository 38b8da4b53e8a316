"""High-availability measurements on a pg_auto_failover formation, from one run:

    python -m lab.ha [--clients 32] [--seconds 15] [--single-url URL]

- unavailability: a transfer load (TransferService and TransferBatcher, idempotency keys,
  retried), the primary's keeper and postgres SIGKILLed; seconds from the kill to the
  first commit of an attempt begun after it, p99 latency of the calls that ended in the
  failover window, and the load's invariants;
- replica lag: pg_stat_replication.replay_lag sampled every 50 ms under the load;
- read scaling: account-history reads at 64 clients, all on the primary vs all routed to
  the standby (DATABASE_READ_URL);
- the cost of synchronous replication: transfer throughput on the formation vs a single
  server (a scratch database on --single-url's server).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import replace

import asyncpg
from sqlalchemy.engine import make_url

from db import DatabaseSettings, create_engine, create_session_factory, migrations
from lab.ha import load
from lab.servers.formation import Formation, start
from services import AccountService, TransferBatcher

_SETTINGS = DatabaseSettings(pool_size=10, max_overflow=40, pool_timeout=30)


async def _throughput(url: str, clients: int, seconds: float, batched: bool) -> float:
    engine = create_engine(replace(_SETTINGS, url=url))
    sessions = create_session_factory(engine)
    try:
        ledger = await load.open_ledger(sessions, 16)
        observed = load.Observed()
        prefix = f"tp-{time.time_ns()}"
        if batched:
            async with TransferBatcher(sessions) as batcher:
                await load.run_clients(
                    sessions,
                    ledger,
                    clients=clients,
                    seconds=seconds,
                    batcher=batcher,
                    observed=observed,
                    key_prefix=prefix,
                )
        else:
            await load.run_clients(
                sessions,
                ledger,
                clients=clients,
                seconds=seconds,
                observed=observed,
                key_prefix=prefix,
            )
        return len(observed.acknowledged) / seconds
    finally:
        await engine.dispose()


async def _reads(url: str, read_url: str | None, clients: int, seconds: float) -> float:
    engine = create_engine(replace(_SETTINGS, url=url, read_url=read_url))
    sessions = create_session_factory(engine)
    try:
        ledger = await load.open_ledger(sessions, clients)
        service = AccountService(sessions)
        done = 0
        deadline = time.monotonic() + seconds

        async def reader(number: int) -> None:
            nonlocal done
            while time.monotonic() < deadline:
                await service.history(ledger.account_ids[number], limit=20)
                done += 1

        await asyncio.gather(*(reader(n) for n in range(clients)))
        return done / seconds
    finally:
        await engine.dispose()


async def _lag_samples(formation: Formation, seconds: float) -> list[float]:
    primary = formation.node_ports[formation.primary()]
    connection = await asyncpg.connect(
        host="127.0.0.1", port=primary, user="postgres", database=formation.database
    )
    samples: list[float] = []
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            lag = await connection.fetchval(
                "SELECT EXTRACT(epoch FROM replay_lag) FROM pg_stat_replication LIMIT 1"
            )
            if lag is not None:
                samples.append(float(lag))
            await asyncio.sleep(0.05)  # the sampling period
    finally:
        await connection.close()
    return samples


async def _failover(formation: Formation, clients: int, seconds: float) -> list[str]:
    engine = create_engine(replace(_SETTINGS, url=formation.url()))
    sessions = create_session_factory(engine)
    lines: list[str] = []
    try:
        ledger = await load.open_ledger(sessions, 16)
        observed = load.Observed()
        old = formation.primary()
        half = clients // 2
        async with TransferBatcher(sessions) as batcher:

            async def kill() -> float:
                await asyncio.sleep(seconds / 4)
                moment = time.monotonic()
                await asyncio.to_thread(formation.kill, old)
                return moment

            killed_at, *_ = await asyncio.gather(
                kill(),
                load.run_clients(
                    sessions,
                    ledger,
                    clients=half,
                    seconds=seconds,
                    observed=observed,
                    key_prefix="fo-s",
                ),
                load.run_clients(
                    sessions,
                    ledger,
                    clients=clients - half,
                    seconds=seconds,
                    batcher=batcher,
                    observed=observed,
                    key_prefix="fo-b",
                ),
            )
        verdict = await load.check(sessions, ledger, observed, key_prefix="fo")
        gap = observed.first_commit_after(killed_at)
        before = observed.percentile(0.99, since=0.0)
        window = [s for end, s in observed.latencies if killed_at <= end <= killed_at + 15]
        window.sort()
        p99 = window[min(len(window) - 1, int(0.99 * len(window)))] if window else 0.0
        lines += [
            f"| unavailability: kill -> first commit | {gap:.2f} s |"
            if gap is not None
            else "| unavailability | no commit after the kill |",
            f"| p99 latency, whole run / calls ending in the 15 s after the kill | "
            f"{before:.3f} s / {p99:.2f} s |",
            f"| acknowledged / lost / doubled / untyped errors | {len(observed.acknowledged)} / "
            f"{len(verdict.lost)} / {len(verdict.doubled)} / {observed.untyped()} |",
            f"| typed errors seen by callers (retried) | {dict(observed.typed_errors)} |",
            f"| money conserved, audit clean | {verdict.total == verdict.expected_total}, "
            f"{verdict.audit_ok} |",
        ]
        formation.restart(old)
        await asyncio.to_thread(formation.wait_healthy)
    finally:
        await engine.dispose()
    return lines


async def _scratch_database(server_url: str) -> tuple[str, str]:
    url = make_url(server_url)
    name = f"ha_bench_{time.time_ns()}"
    connection = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username or "postgres", database=url.database
    )
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return url.set(database=name).render_as_string(hide_password=False), name


async def _drop_database(server_url: str, name: str) -> None:
    url = make_url(server_url)
    connection = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username or "postgres", database=url.database
    )
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def measure(clients: int, seconds: float, single_url: str) -> list[str]:
    """Run every measurement; return the report's lines (markdown)."""
    formation = await asyncio.to_thread(start)
    single, name = await _scratch_database(single_url)
    lines = ["| measurement | value |", "| --- | --- |"]
    try:
        for url in (formation.url(), single):
            engine = create_engine(replace(_SETTINGS, url=url, pool_size=1))
            await migrations.upgrade(engine)
            await engine.dispose()
        lag_task = asyncio.create_task(_lag_samples(formation, seconds / 2))
        formation_service = await _throughput(formation.url(), clients, seconds / 2, False)
        lag = await lag_task
        formation_batched = await _throughput(formation.url(), clients, seconds / 2, True)
        single_service = await _throughput(single, clients, seconds / 2, False)
        single_batched = await _throughput(single, clients, seconds / 2, True)
        lines += [
            f"| TransferService, {clients} clients: formation (sync replication) / single server "
            f"| {formation_service:.0f} / {single_service:.0f} transfers/s "
            f"(x{formation_service / single_service:.2f}) |",
            f"| TransferBatcher, {clients} clients: formation / single server "
            f"| {formation_batched:.0f} / {single_batched:.0f} transfers/s "
            f"(x{formation_batched / single_batched:.2f}) |",
        ]
        if lag:
            ordered = sorted(lag)
            lines.append(
                f"| replica replay lag under the TransferService load, p50 / p99 "
                f"({len(lag)} samples) | {statistics.median(ordered) * 1000:.1f} / "
                f"{ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000:.1f} ms |"
            )
        primary_reads = await _reads(formation.url(), None, 64, seconds / 2)
        standby_reads = await _reads(
            formation.url(), formation.node_url(formation.standby()), 64, seconds / 2
        )
        lines.append(
            f"| history reads, 64 clients: primary alone / routed to the standby "
            f"| {primary_reads:.0f} / {standby_reads:.0f} reads/s "
            f"(x{standby_reads / primary_reads:.2f}) |"
        )
        lines += await _failover(formation, clients, seconds)
    finally:
        with contextlib.suppress(Exception):
            await _drop_database(single_url, name)
        await asyncio.to_thread(formation.stop)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the measurements and print a markdown table."""
    parser = argparse.ArgumentParser(prog="python -m lab.ha")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument(
        "--single-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/test",
        help="a single PostgreSQL server to compare with (a scratch database is made there)",
    )
    args = parser.parse_args(argv)
    for line in asyncio.run(measure(args.clients, args.seconds, args.single_url)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
