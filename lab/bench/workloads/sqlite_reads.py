"""Reads on SQLite: a point read and the dashboard read, with pools of 1, 2 and 5.

The dashboard read is one account's page in one snapshot, the same for every variant;
services.DashboardService reads a whole user page in six transactions, a different
operation, so it is not a row here (docs/benchmarks.md).
"""

from __future__ import annotations

from lab.bench.config import BenchConfig
from lab.bench.ops import Kind
from lab.bench.variants.aiosqlite_raw import AiosqliteRaw
from lab.bench.variants.base import Variant
from lab.bench.variants.ledger_service import LedgerServices
from lab.bench.variants.sqlalchemy_async import SqlalchemyAsyncCore
from lab.bench.variants.sqlalchemy_sync import SqlalchemySyncCore
from lab.bench.variants.sqlite_blocking import SqliteBlocking
from lab.bench.variants.sqlite_to_thread import ToThreadPerCall, ToThreadPerTransaction
from lab.bench.workloads.base import Axis, Case
from lab.bench.workloads.ledger import ReadWorkload

VARIANTS: tuple[type[Variant], ...] = (
    SqliteBlocking,
    SqlalchemySyncCore,
    ToThreadPerCall,
    ToThreadPerTransaction,
    AiosqliteRaw,
    SqlalchemyAsyncCore,
    LedgerServices,
)


class SqliteReads(ReadWorkload):
    """Reference: blocking sqlite3, one client; then `read_clients` clients per pool size."""

    backend = "sqlite"
    axis: Axis = "pool"

    def __init__(self, name: str, title: str, kind: Kind) -> None:
        self.name = name
        self.title = title
        self.kind = kind

    def cases(self, config: BenchConfig) -> list[Case]:
        cases = [Case(v, 1, 1, reference=v is SqliteBlocking) for v in VARIANTS]
        for pool in config.read_pools:
            cases += [Case(v, config.read_clients, pool) for v in VARIANTS]
        return cases

    def size(self, config: BenchConfig) -> int:
        return config.read_ops


POINT_READS = SqliteReads(
    "point-reads", "Point reads on SQLite (one balance by id)", Kind.POINT_READ
)
DASHBOARD = SqliteReads(
    "dashboard",
    "Dashboard read on SQLite (an account and its 10 newest transfers, one snapshot)",
    Kind.DASHBOARD,
)
