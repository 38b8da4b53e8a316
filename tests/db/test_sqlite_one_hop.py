"""The one-hop aiosqlite adapter: fewer thread crossings, same behaviour."""

from __future__ import annotations

import re
import sqlite3
import tomllib
from pathlib import Path
from types import CodeType
from typing import Any

import aiosqlite.core
import pytest
from sqlalchemy import text
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_ss_cursor,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from db import DatabaseSettings, create_engine, create_session_factory, migrations, sqlite_one_hop
from db.sqlite_one_hop import (
    DEFERRED,
    TESTED_VERSIONS,
    OneHopCursor,
    OneHopDBAPI,
    OneHopServerSideCursor,
    OneHopUnavailable,
    installed_versions,
    refusal,
)
from services import AccountService, LedgerAuditor, TransferService, UserService
from services.db_errors import is_transient
from tests.support.backends import sqlite_only
from tests.support.paths import PROJECT_ROOT


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
    # BEGIN IMMEDIATE with the lock of the accounts, insert the transfer, then the balance
    # update and its outbox job (DEFERRED statements) with COMMIT.
    assert per_transfer == 3
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


async def test_a_transactions_begin_crosses_with_its_first_statement(
    tmp_path: Path, crossings: list[str]
) -> None:
    engine = await _ledger_engine(tmp_path, one_hop=True)
    try:
        async with engine.connect() as connection:
            crossings.clear()
            async with connection.begin():
                await connection.execute(
                    text("INSERT INTO users (email, name) VALUES ('b@b.b', 'b')")
                )
            assert crossings == ["partial", "commit"]
            async with connection.begin():
                pass  # nothing was sent, so there is nothing to end
            assert crossings == ["partial", "commit"]
            async with connection.begin():
                await connection.execute(
                    text("INSERT INTO users (email, name) VALUES ('c@c.c', 'c')")
                )
                await connection.rollback()
        async with engine.connect() as connection:
            emails = (await connection.execute(text("SELECT email FROM users"))).scalars().all()
    finally:
        await engine.dispose()
    assert emails == ["b@b.b"]


_DEFERRED_INSERT = f"INSERT {DEFERRED} INTO users (email, name) VALUES (:email, 'd')"


async def test_a_deferred_statement_crosses_with_the_next_statement(
    tmp_path: Path, crossings: list[str]
) -> None:
    engine = await _ledger_engine(tmp_path, one_hop=True)
    try:
        async with engine.connect() as connection:
            crossings.clear()
            async with connection.begin():
                await connection.execute(text(_DEFERRED_INSERT), {"email": "d@d.d"})
                assert crossings == []
                count = await connection.scalar(text("SELECT count(*) FROM users"))
            assert crossings == ["partial", "commit"]
    finally:
        await engine.dispose()
    assert count == 1  # the next statement saw it: it ran first, in the same crossing


async def test_a_deferred_statement_crosses_with_commit(
    tmp_path: Path, crossings: list[str]
) -> None:
    engine = await _ledger_engine(tmp_path, one_hop=True)
    try:
        async with engine.connect() as connection:
            crossings.clear()
            async with connection.begin():
                await connection.execute(text(_DEFERRED_INSERT), {"email": "c@c.c"})
            assert crossings == ["partial"]  # BEGIN, the insert and COMMIT in one
        async with engine.connect() as connection:
            emails = (await connection.execute(text("SELECT email FROM users"))).scalars().all()
    finally:
        await engine.dispose()
    assert emails == ["c@c.c"]


async def _insert_then_deferred_duplicate(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO users (email, name) VALUES ('new@x.y', 'n')"))
        await connection.execute(text(_DEFERRED_INSERT), {"email": "taken@x.y"})


async def test_a_deferred_statement_that_fails_fails_the_commit_and_rolls_back(
    tmp_path: Path,
) -> None:
    engine = await _ledger_engine(tmp_path, one_hop=True)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(_DEFERRED_INSERT), {"email": "taken@x.y"})
        with pytest.raises(IntegrityError):
            await _insert_then_deferred_duplicate(engine)
        async with engine.connect() as connection:
            emails = (await connection.execute(text("SELECT email FROM users"))).scalars().all()
    finally:
        await engine.dispose()
    assert emails == ["taken@x.y"]


async def test_a_deferred_statement_is_dropped_by_rollback(tmp_path: Path) -> None:
    engine = await _ledger_engine(tmp_path, one_hop=True)
    try:
        async with engine.connect() as connection:
            async with connection.begin():
                await connection.execute(text(_DEFERRED_INSERT), {"email": "r@r.r"})
                await connection.rollback()
            count = await connection.scalar(text("SELECT count(*) FROM users"))
    finally:
        await engine.dispose()
    assert count == 0


async def test_a_begin_that_finds_the_write_lock_busy_fails_the_first_statement(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/l.db"
    holder = await _ledger_engine(tmp_path, one_hop=True)
    waiter = create_engine(DatabaseSettings(url=url, busy_timeout_ms=50))
    try:
        async with holder.begin() as held:
            await held.execute(text("INSERT INTO users (email, name) VALUES ('h@h.h', 'h')"))
            async with waiter.connect() as connection:
                with pytest.raises(OperationalError, match="database is locked") as refused:
                    async with connection.begin():
                        await connection.execute(text("SELECT count(*) FROM users"))
                assert is_transient(refused.value)
        # The same pooled connection begins again once the lock is free.
        async with waiter.begin() as connection:
            count = await connection.scalar(text("SELECT count(*) FROM users"))
    finally:
        await waiter.dispose()
        await holder.dispose()
    assert count == 1


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


def _reads_driver_cursor(member: object) -> bool:
    """Whether a class member's code (or a property's accessors) touches `_cursor`."""
    functions = [member.fget, member.fset] if isinstance(member, property) else [member]
    codes = [f.__code__ for f in functions if hasattr(f, "__code__")]
    while codes:
        code = codes.pop()
        if "_cursor" in code.co_names:
            return True
        codes.extend(c for c in code.co_consts if isinstance(c, CodeType))
    return False


@pytest.mark.parametrize(
    ("stock", "ours"),
    [
        (AsyncAdapt_aiosqlite_cursor, OneHopCursor),
        (AsyncAdapt_aiosqlite_ss_cursor, OneHopServerSideCursor),
    ],
)
def test_every_base_cursor_method_that_needs_a_driver_cursor_is_overridden(
    stock: type, ours: type
) -> None:
    needing = {
        name
        for base in stock.__mro__[:-1]
        for name, member in vars(base).items()
        if _reads_driver_cursor(member)
    }
    assert needing  # the check sees the base class's code at all
    assert needing - set(vars(ours)) == set()


ROWS_STREAMED = 500


async def test_a_streamed_read_opens_with_its_begin_in_one_crossing_then_one_per_batch(
    tmp_path: Path, crossings: list[str]
) -> None:
    engine = await _ledger_engine(tmp_path, one_hop=True)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))  # the pool's first connect, not counted
            await connection.rollback()
            crossings.clear()
            async with connection.begin():
                stream = await connection.stream(
                    text(
                        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                        f"WHERE i < {ROWS_STREAMED}) SELECT i FROM n"
                    )
                )
                opened = len(crossings)
                rows = [row async for batch in stream.partitions(1000) for row in batch]
                read = len(crossings)
        assert len(rows) == ROWS_STREAMED
        assert opened == 1  # BEGIN IMMEDIATE, the SELECT and its first rows together
        # Then a crossing per batch SQLAlchemy asks for (growing from 1, 5, 25, ... rows,
        # the first answered by the opening crossing), and none more.
        assert read - opened <= 4
    finally:
        await engine.dispose()


async def test_nextset_and_setinputsizes_behave_as_on_a_sqlite3_cursor(tmp_path: Path) -> None:
    engine = await _ledger_engine(tmp_path, one_hop=True)

    def use_cursor(connection: Connection) -> tuple[Any, ...]:
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.setinputsizes([None])
            cursor.execute("SELECT 1 UNION ALL SELECT 2 ORDER BY 1")
            first = cursor.fetchone()
            more = cursor.nextset()  # one result set per statement: its rest is discarded
            return first, more, cursor.fetchall()
        finally:
            cursor.close()

    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(use_cursor) == ((1,), None, [])
    finally:
        await engine.dispose()


def test_the_installed_libraries_are_in_the_tested_range() -> None:
    assert refusal(installed_versions()) is None


@pytest.mark.parametrize(
    "versions",
    [
        {"sqlalchemy": "2.2.0", "aiosqlite": "0.22.1"},
        {"sqlalchemy": "2.0.46", "aiosqlite": "0.22.1"},
        {"sqlalchemy": "2.1.9", "aiosqlite": "0.23.0"},
        {"sqlalchemy": "2.1.9", "aiosqlite": "unknown"},
        {"sqlalchemy": "2.1.9"},
    ],
    ids=["newer sqlalchemy", "older sqlalchemy", "newer aiosqlite", "unparsable", "missing"],
)
def test_versions_outside_the_tested_range_are_refused(versions: dict[str, str]) -> None:
    assert refusal(versions) is not None


async def test_untested_versions_fall_back_to_the_stock_adapter_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        sqlite_one_hop,
        "installed_versions",
        lambda: {"sqlalchemy": "2.2.0", "aiosqlite": aiosqlite.__version__},
    )
    settings = DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/l.db", sqlite_one_hop=True)
    with pytest.warns(OneHopUnavailable, match="sqlalchemy 2.2.0"):
        engine = create_engine(settings)
    try:
        assert not isinstance(engine.dialect.dbapi, OneHopDBAPI)
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()


def test_the_tested_range_holds_what_pyproject_pins() -> None:
    # The pin may start later than the adapter's range (for fixes elsewhere), never earlier,
    # and it ends where the range does.
    pins = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for name, (lowest, first_untested) in TESTED_VERSIONS.items():
        (pin,) = [p for p in pins if re.match(rf"{name}(\[\w+\])?>=", p.lower())]
        found = re.search(r">=(\d+)\.(\d+)(?:\.\d+)*,<(\d+)\.(\d+)$", pin)
        assert found, pin
        low_major, low_minor, end_major, end_minor = map(int, found.groups())
        assert (low_major, low_minor) >= lowest, pin
        assert (end_major, end_minor) == first_untested, pin


@sqlite_only
def test_the_suite_runs_on_the_adapter_db_sqlite_one_hop_chooses(engine: AsyncEngine) -> None:
    # `DB_SQLITE_ONE_HOP=false pytest`: every engine not told otherwise gets the stock adapter.
    assert isinstance(engine.dialect.dbapi, OneHopDBAPI) == DatabaseSettings().sqlite_one_hop


async def test_a_base_method_reaching_for_a_driver_cursor_fails_with_a_dbapi_error(
    tmp_path: Path,
) -> None:
    engine = await _ledger_engine(tmp_path, one_hop=True)

    def reach(connection: Connection) -> None:
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            # What an unknown base method of a later SQLAlchemy would do first.
            cursor._cursor.fetchone  # noqa: B018
        finally:
            cursor.close()

    try:
        async with engine.connect() as connection:
            with pytest.raises(sqlite3.NotSupportedError, match="one-hop"):
                await connection.run_sync(reach)
    finally:
        await engine.dispose()
