"""A database that is not at head: the library itself says so with SchemaNotMigrated."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db import DatabaseSettings, create_engine, create_session_factory, migrations
from services import (
    AccountService,
    DashboardService,
    JobQueue,
    LedgerAuditor,
    TransferBatcher,
    TransferService,
    UserService,
    ensure_migrated,
)
from services.errors import SchemaNotMigrated
from services.transactions import Sessions
from tests.support.backends import NewDatabase

UseCase = Callable[[Sessions], Awaitable[object]]


async def _batched(sessions: Sessions) -> object:
    async with TransferBatcher(sessions) as batcher:
        return await batcher.transfer(1, 2, 5)


USE_CASES: dict[str, UseCase] = {
    "register": lambda s: UserService(s).register("a@example.com", "A"),
    "balance": lambda s: AccountService(s).balance(1),
    "deposit": lambda s: AccountService(s).deposit(1, 5, idempotency_key="k"),
    "transfer": lambda s: TransferService(s).transfer(1, 2, 5),
    "batched transfer": _batched,
    "dashboard": lambda s: DashboardService(s).for_user(1),
    "audit": lambda s: LedgerAuditor(s).verify(),
    "enqueue": lambda s: JobQueue(s).enqueue("k", {}),
}


@pytest.fixture
async def empty_engine(new_database: NewDatabase) -> AsyncIterator[AsyncEngine]:
    """An engine on a database that was never migrated."""
    engine = create_engine(DatabaseSettings(url=await new_database()))
    yield engine
    await engine.dispose()


@pytest.mark.parametrize("use_case", USE_CASES.values(), ids=USE_CASES.keys())
async def test_a_use_case_on_a_never_migrated_database_raises_schema_not_migrated(
    empty_engine: AsyncEngine, use_case: UseCase
) -> None:
    with pytest.raises(SchemaNotMigrated, match="ledgerctl migrate"):
        await use_case(create_session_factory(empty_engine))


async def test_a_table_a_later_revision_adds_is_reported_as_not_migrated(
    empty_engine: AsyncEngine,
) -> None:
    await migrations.upgrade(empty_engine, "0001")
    with pytest.raises(SchemaNotMigrated, match="jobs"):
        await JobQueue(create_session_factory(empty_engine)).stats()


async def test_ensure_migrated_refuses_a_database_without_a_schema(
    empty_engine: AsyncEngine,
) -> None:
    with pytest.raises(SchemaNotMigrated, match="no schema") as raised:
        await ensure_migrated(empty_engine)
    assert raised.value.current is None
    assert raised.value.head == migrations.head_revision()


async def test_ensure_migrated_refuses_a_database_behind_head(empty_engine: AsyncEngine) -> None:
    await migrations.upgrade(empty_engine, "0001")
    with pytest.raises(SchemaNotMigrated, match="at revision 0001") as raised:
        await ensure_migrated(empty_engine)
    assert raised.value.current == "0001"


async def test_ensure_migrated_refuses_a_revision_this_code_does_not_know(
    empty_engine: AsyncEngine,
) -> None:
    await migrations.upgrade(empty_engine)
    async with empty_engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    with pytest.raises(SchemaNotMigrated, match="does not know"):
        await ensure_migrated(empty_engine)


async def test_upgrade_then_ensure_migrated_is_the_start_up_sequence(
    empty_engine: AsyncEngine,
) -> None:
    await migrations.upgrade(empty_engine)
    await ensure_migrated(empty_engine)
    user = await UserService(create_session_factory(empty_engine)).register("b@example.com", "B")
    assert user.id >= 1


async def test_ensure_migrated_refuses_a_missing_sqlite_file_without_creating_it(
    tmp_path: Path,
) -> None:
    mistyped = tmp_path / "ledgr.db"
    engine = create_engine(DatabaseSettings(url=f"sqlite+aiosqlite:///{mistyped}"))
    try:
        with pytest.raises(SchemaNotMigrated, match="ledgerctl migrate") as raised:
            await ensure_migrated(engine)
    finally:
        await engine.dispose()
    assert str(mistyped) in str(raised.value)
    assert "\n" not in str(raised.value)
    assert not mistyped.exists()
