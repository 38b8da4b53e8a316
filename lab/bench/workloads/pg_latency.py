"""Latency-bound requests on PostgreSQL: where async concurrency actually wins.

Each request waits 5 ms on the server (pg_sleep) and then looks up a balance, like a
request that calls a slow query or a remote service. Waiting costs no CPU, so what
counts is how many requests can wait at once: the pool size, and how cheaply a client
can wait (a task in the loop, or a whole OS thread).
"""

from __future__ import annotations

from lab.bench.config import BenchConfig
from lab.bench.ops import Kind
from lab.bench.variants.base import Variant
from lab.bench.variants.sqlalchemy_async import SqlalchemyAsyncCore
from lab.bench.workloads.base import Axis, Case
from lab.bench.workloads.ledger import ReadWorkload


class PostgresLatency(ReadWorkload):
    """Reference: blocking psycopg, one client. Then `latency_clients` clients per pool size."""

    name = "pg-latency"
    title = "Latency-bound requests on PostgreSQL (pg_sleep 5 ms + a lookup)"
    backend = "postgresql"
    kind = Kind.SLOW_LOOKUP
    axis: Axis = "pool"
    unit = "requests/s"
    requires = ("asyncpg", "psycopg")
    history_per_account = 0

    def cases(self, config: BenchConfig) -> list[Case]:
        from lab.bench.variants.asyncpg_raw import AsyncpgRaw
        from lab.bench.variants.psycopg_blocking import PsycopgBlocking

        variants: tuple[type[Variant], ...] = (PsycopgBlocking, AsyncpgRaw, SqlalchemyAsyncCore)
        cases = [Case(PsycopgBlocking, 1, 1, reference=True)]
        for pool in config.latency_pools:
            cases += [Case(v, config.latency_clients, pool) for v in variants]
        return cases

    def size(self, config: BenchConfig) -> int:
        return config.latency_ops


WORKLOAD = PostgresLatency()
