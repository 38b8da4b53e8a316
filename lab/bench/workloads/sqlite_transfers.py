"""Transfers on a SQLite file (WAL): every variant, sequential and with N clients."""

from __future__ import annotations

from lab.bench.config import BenchConfig
from lab.bench.variants.aiosqlite_raw import AiosqliteRaw
from lab.bench.variants.base import Variant
from lab.bench.variants.ledger_service import LedgerBatcher, LedgerServices, LedgerServicesStock
from lab.bench.variants.naive_orm import NaiveOrm
from lab.bench.variants.sqlalchemy_async import SqlalchemyAsyncCore, SqlalchemyAsyncCoreStock
from lab.bench.variants.sqlalchemy_sync import SqlalchemySyncCore
from lab.bench.variants.sqlite_blocking import SqliteBlocking
from lab.bench.variants.sqlite_to_thread import ToThreadPerCall, ToThreadPerTransaction
from lab.bench.workloads.base import Case
from lab.bench.workloads.ledger import TransferWorkload

VARIANTS: tuple[type[Variant], ...] = (
    SqliteBlocking,
    SqlalchemySyncCore,
    ToThreadPerCall,
    ToThreadPerTransaction,
    AiosqliteRaw,
    SqlalchemyAsyncCoreStock,
    SqlalchemyAsyncCore,
    LedgerServicesStock,
    LedgerServices,
    LedgerBatcher,
    NaiveOrm,
)


class SqliteTransfers(TransferWorkload):
    """Reference: blocking sqlite3, one client. Concurrent rows share a pool of `pool`."""

    name = "transfers"
    title = "Transfers on SQLite (file, WAL)"
    backend = "sqlite"

    def cases(self, config: BenchConfig) -> list[Case]:
        cases = [Case(v, 1, 1, reference=v is SqliteBlocking) for v in VARIANTS]
        for clients in config.clients:
            cases += [Case(v, clients, config.pool) for v in VARIANTS]
        return cases

    def size(self, config: BenchConfig) -> int:
        return config.transfer_ops


WORKLOAD = SqliteTransfers()
