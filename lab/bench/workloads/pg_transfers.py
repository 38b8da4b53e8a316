"""Transfers on PostgreSQL: the native async driver, SQLAlchemy and the service, vs psycopg."""

from __future__ import annotations

from lab.bench.config import BenchConfig
from lab.bench.variants.base import Variant
from lab.bench.variants.ledger_service import (
    LedgerBatcher,
    LedgerBatcherPgBouncer,
    LedgerServices,
    LedgerServicesPgBouncer,
)
from lab.bench.variants.naive_orm import NaiveOrm
from lab.bench.variants.sqlalchemy_async import SqlalchemyAsyncCore
from lab.bench.workloads.base import Case
from lab.bench.workloads.ledger import TransferWorkload


class PostgresTransfers(TransferWorkload):
    """Reference: blocking psycopg, one client. Concurrent rows: each of `pg_clients` clients,
    sharing a pool of `pg_pool`. pgbench (PostgreSQL's C client) runs the same transfer at
    every client level, one connection per client, when it is installed."""

    name = "pg-transfers"
    title = "Transfers on PostgreSQL"
    backend = "postgresql"
    requires = ("asyncpg", "psycopg")
    uses_pgbouncer = True

    def cases(self, config: BenchConfig) -> list[Case]:
        # Imported here: the drivers are an optional extra, checked through `requires`.
        from lab.bench.variants.asyncpg_raw import AsyncpgRaw
        from lab.bench.variants.pgbench import Pgbench, pgbench_path
        from lab.bench.variants.psycopg_blocking import PsycopgBlocking

        variants: tuple[type[Variant], ...] = (
            PsycopgBlocking,
            AsyncpgRaw,
            SqlalchemyAsyncCore,
            LedgerServices,
            LedgerBatcher,
            NaiveOrm,
        )
        if pgbench_path() is not None:
            variants = (PsycopgBlocking, Pgbench, *variants[1:])
        if config.pgbouncer_url is not None:
            # Next to their direct rows: the difference is the pooler's hop.
            variants += (LedgerServicesPgBouncer, LedgerBatcherPgBouncer)
        cases = [Case(v, 1, 1, reference=v is PsycopgBlocking) for v in variants]
        for clients in config.pg_clients:
            cases += [Case(v, clients, config.pg_pool) for v in variants]
        return cases

    def size(self, config: BenchConfig) -> int:
        return config.pg_transfer_ops


WORKLOAD = PostgresTransfers()
