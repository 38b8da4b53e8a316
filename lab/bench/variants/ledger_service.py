"""This project's service layer: TransferService and AccountService on db.create_engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncEngine

from db import POOLER_TRANSACTION, DatabaseSettings, create_engine, create_session_factory
from lab.bench.ops import Kind, Meter, Op
from lab.bench.sql import HISTORY_PAGE, history_checksum
from lab.bench.variants.base import AsyncOperation, AsyncVariant
from services import AccountService, TransferBatcher, TransferService
from services.errors import InsufficientFunds


class LedgerServices(AsyncVariant):
    """The ORM path with everything the project adds: validation, locking, retries, records.

    Retries happen inside the services (run_in_transaction), so they are not counted here.
    """

    key = "service"
    label = "TransferService (this project)"
    hop_via = "aiosqlite"
    kinds = frozenset({Kind.TRANSFER, Kind.POINT_READ, Kind.DASHBOARD})

    # The project's SQLite adapter (db/sqlite_one_hop.py): one thread hop per statement.
    one_hop: ClassVar[bool] = True

    def settings(self) -> DatabaseSettings:
        """The engine's settings: the target, with a pool of `pool` and no overflow."""
        return DatabaseSettings(
            url=self.target.url, pool_size=self.pool, max_overflow=0, sqlite_one_hop=self.one_hop
        )

    async def open(self) -> None:
        self._engine = create_engine(self.settings())
        self._sessions = create_session_factory(self._engine)
        self._transfers = TransferService(self._sessions)
        self._accounts = AccountService(self._sessions)
        connections = [await self._engine.connect() for _ in range(self.pool)]
        for connection in connections:
            await connection.close()

    async def close(self) -> None:
        await self._engine.dispose()

    def engines(self) -> Sequence[AsyncEngine]:
        return (self._engine,)

    def operation(self, kind: Kind) -> AsyncOperation:
        if kind is Kind.TRANSFER:
            return self._transfer
        if kind is Kind.POINT_READ:
            return self._point_read
        if kind is Kind.DASHBOARD:
            return self._dashboard
        raise self.unsupported(kind)

    async def _transfer(self, op: Op, meter: Meter) -> int:
        try:
            await self._transfers.transfer(op.account, op.other, op.amount)
        except InsufficientFunds:
            return 0
        return 1

    async def _point_read(self, op: Op, meter: Meter) -> int:
        return await self._accounts.balance(op.account)

    async def _dashboard(self, op: Op, meter: Meter) -> int:
        page = await self._accounts.history(op.account, limit=HISTORY_PAGE)
        return history_checksum([item.id for item in page.items])


class LedgerServicesStock(LedgerServices):
    """The services on SQLAlchemy's stock aiosqlite adapter (DB_SQLITE_ONE_HOP=false)."""

    key = "service-stock"
    label = "TransferService, stock adapter"
    one_hop = False


class LedgerBatcher(LedgerServices):
    """TransferBatcher: concurrent transfers committed together by one writer task."""

    key = "batcher"
    label = "TransferBatcher (group commit)"
    kinds = frozenset({Kind.TRANSFER})

    async def open(self) -> None:
        await super().open()
        self._batcher = TransferBatcher(self._sessions)
        self._batcher.start()

    async def close(self) -> None:
        await self._batcher.close()
        await super().close()

    def operation(self, kind: Kind) -> AsyncOperation:
        if kind is not Kind.TRANSFER:
            raise self.unsupported(kind)
        return self._batched_transfer

    async def _batched_transfer(self, op: Op, meter: Meter) -> int:
        try:
            await self._batcher.transfer(op.account, op.other, op.amount)
        except InsufficientFunds:
            return 0
        return 1


class _ThroughPgBouncer(LedgerServices):
    """The same variant through PgBouncer in transaction mode (DB_PG_POOLER=transaction);
    the direct connection is only DB_LISTEN_URL, which these variants never use."""

    def settings(self) -> DatabaseSettings:
        if self.target.pooler_url is None:
            raise ValueError(f"{self.key} needs a target with a pooler_url")
        return (
            super()
            .settings()
            .replace(
                url=self.target.pooler_url,
                pg_pooler=POOLER_TRANSACTION,
                listen_url=self.target.url,
            )
        )


class LedgerServicesPgBouncer(_ThroughPgBouncer):
    """TransferService through PgBouncer."""

    key = "service-pgbouncer"
    label = "TransferService via PgBouncer"


class LedgerBatcherPgBouncer(_ThroughPgBouncer, LedgerBatcher):
    """TransferBatcher through PgBouncer."""

    key = "batcher-pgbouncer"
    label = "TransferBatcher via PgBouncer"
