"""The one-hop aiosqlite adapter: fewer thread crossings, same behaviour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite.core
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db import DatabaseSettings, create_engine, create_session_factory, migrations
from services import AccountService, LedgerAuditor, TransferService, UserService


@pytest.fixture
def crossings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every call aiosqlite queues to a connection's thread."""
    calls: list[str] = []
    original = aiosqlite.core.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__name__", type(fn).__name__))
        return await original(self, fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counting)
    return calls


async def _ledger_engine(tmp_path: Path, one_hop: bool) -> AsyncEngine:
    settings = DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/l.db", sqlite_one_hop=one_hop)
    engine = create_engine(settings)
    await migrations.upgrade(engine)
    return engine


async def _transfers_crossings(engine: AsyncEngine, crossings: list[str]) -> float:
    sessions = create_session_factory(engine)
    user = await UserService(sessions).register("hops@example.com", "Hops")
    accounts = AccountService(sessions)
    a, b = await accounts.open(user.id, "EUR"), await accounts.open(user.id, "EUR")
    await accounts.deposit(a.id, 1_000)
    transfers = TransferService(sessions)
    await transfers.transfer(a.id, b.id, 1)  # warm up: the pool holds a connection now
    crossings.clear()
    for i in range(10):
        await transfers.transfer(a.id, b.id, 1, idempotency_key=f"k{i}")
    per_transfer = len(crossings) / 10
    assert (await LedgerAuditor(sessions).verify()).ok
    return per_transfer


async def test_a_transfer_crosses_to_the_sqlite_thread_once_per_statement_and_commit(
    tmp_path: Path, crossings: list[str]
) -> None:
    engine = await _ledger_engine(tmp_path, one_hop=True)
    try:
        per_transfer = await _transfers_crossings(engine, crossings)
    finally:
        await engine.dispose()
    # BEGIN IMMEDIATE, lock accounts, insert transfer, insert its outbox job, move
    # balances, COMMIT.
    assert per_transfer == 6
    assert "rollback" not in crossings  # nothing to undo after COMMIT: no crossing for it


async def test_the_stock_adapter_crosses_several_times_per_statement(
    tmp_path: Path, crossings: list[str]
) -> None:
    engine = await _ledger_engine(tmp_path, one_hop=False)
    try:
        per_transfer = await _transfers_crossings(engine, crossings)
    finally:
        await engine.dispose()
    assert per_transfer >= 12  # cursor, execute, fetch, close for each statement


async def test_a_connection_returned_inside_a_transaction_is_rolled_back(tmp_path: Path) -> None:
    engine = await _ledger_engine(tmp_path, one_hop=True)
    try:
        async with engine.connect() as connection:
            await connection.begin()
            await connection.execute(text("INSERT INTO users (email, name) VALUES ('x@y.z', 'x')"))
            # leaving without commit: the pool must roll back and release the write lock
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO users (email, name) VALUES ('a@b.c', 'a')"))
        async with engine.connect() as connection:
            emails = (await connection.execute(text("SELECT email FROM users"))).scalars().all()
    finally:
        await engine.dispose()
    assert emails == ["a@b.c"]


async def test_rowcount_and_lastrowid_come_back_through_one_crossing(tmp_path: Path) -> None:
    engine = await _ledger_engine(tmp_path, one_hop=True)
    try:
        async with engine.begin() as connection:
            inserted = await connection.execute(
                text("INSERT INTO users (email, name) VALUES ('r@r.r', 'r')")
            )
            assert inserted.lastrowid == 1
            updated = await connection.execute(text("UPDATE users SET name = 'R'"))
            assert updated.rowcount == 1
            many = await connection.execute(
                text("INSERT INTO users (email, name) VALUES (:e, 'm')"),
                [{"e": f"m{i}@m.m"} for i in range(3)],
            )
            assert many.rowcount == 3
    finally:
        await engine.dispose()
