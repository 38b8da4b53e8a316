"""The PgBouncer the rows through a transaction pooler use: given, or started for the run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace

from lab.bench.config import BenchConfig
from lab.bench.workloads.base import Workload
from lab.servers.pgbouncer import PgBouncerError, find_pgbouncer, start


@asynccontextmanager
async def with_pgbouncer(
    config: BenchConfig, workloads: Sequence[Workload], notes: list[str]
) -> AsyncIterator[BenchConfig]:
    """`config` with `pgbouncer_url` set when PgBouncer rows can run, else as it is (with a
    note in `notes` saying why not). A PgBouncer started here has a pool as large as the
    benchmark's (`pg_pool`), so the pooler adds its hop and never queues: what the rows
    measure is the hop. It runs no reset query, as transaction pooling usually does."""
    if not any(w.uses_pgbouncer for w in workloads) or config.pgbouncer_url is not None:
        yield config
        return
    if not config.pgbouncer:
        notes.append("rows through PgBouncer: skipped (--no-pgbouncer)")
        yield config
        return
    if find_pgbouncer() is None:
        notes.append(
            "rows through PgBouncer: skipped (pgbouncer is not installed; "
            "install it or give --pgbouncer-url)"
        )
        yield config
        return
    try:
        instance = start(config.postgres_url, pool_size=config.pg_pool, reset_always=False)
    except PgBouncerError as exc:
        notes.append(f"rows through PgBouncer: skipped ({exc})")
        yield config
        return
    try:
        yield replace(config, pgbouncer_url=instance.url)
    finally:
        instance.stop()
