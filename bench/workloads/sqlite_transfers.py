"""Transfers on a SQLite file (WAL): every variant, sequential and with N clients."""

from __future__ import annotations

from bench.config import BenchConfig
from bench.variants.aiosqlite_raw import AiosqliteRaw
from bench.variants.base import Variant
from bench.variants.ledger_service import LedgerBatcher, LedgerServices, LedgerServicesStock
from bench.variants.naive_orm import NaiveOrm
from bench.variants.sqlalchemy_async import SqlalchemyAsyncCore, SqlalchemyAsyncCoreStock
from bench.variants.sqlalchemy_sync import SqlalchemySyncCore
from bench.variants.sqlite_blocking import SqliteBlocking
from bench.variants.sqlite_to_thread import ToThreadPerCall, ToThreadPerTransaction
from bench.workloads.base import Case
from bench.workloads.ledger import TransferWorkload

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
