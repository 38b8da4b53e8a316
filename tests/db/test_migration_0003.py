"""Revision 0003 (scoped idempotency keys): existing rows, the new rule, an exact way back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from db import DatabaseSettings, create_engine, create_session_factory, migrations
from services import AccountService
from services.callers import Caller
from tests.support.backends import NewDatabase


@pytest.fixture
async def at_0002(new_database: NewDatabase) -> AsyncIterator[AsyncEngine]:
    """A database at 0002 holding a keyed and a keyless transfer and a notification."""
    engine = create_engine(DatabaseSettings(url=await new_database()))
    await migrations.upgrade(engine, "0002")
    async with engine.begin() as connection:
        for statement in (
            "INSERT INTO users (id, email, name) VALUES (1, 'a@example.com', 'A')",
            "INSERT INTO accounts (id, owner_id, currency, balance) VALUES (1, 1, 'EUR', 70)",
            "INSERT INTO accounts (id, owner_id, currency, balance) VALUES (2, 1, 'EUR', 30)",
            # No explicit ids here: PostgreSQL's sequence would not know of them.
            "INSERT INTO transfers (source_account_id, destination_account_id, amount, "
            "currency, idempotency_key) VALUES (NULL, 1, 100, 'EUR', 'old-key')",
            "INSERT INTO transfers (source_account_id, destination_account_id, amount, "
            "currency) VALUES (1, 2, 30, 'EUR')",
            "INSERT INTO notifications (id, user_id, transfer_id, message) "
            "VALUES (7, 1, 2, 'you received 0.30 EUR')",
        ):
            await connection.execute(text(statement))
    yield engine
    await engine.dispose()


async def _rows(engine: AsyncEngine, query: str) -> list[tuple[Any, ...]]:
    async with engine.connect() as connection:
        return [tuple(row) for row in await connection.execute(text(query))]


async def _schema(engine: AsyncEngine, table: str) -> dict[str, Any]:
    def read(sync: Any) -> dict[str, Any]:
        found = inspect(sync)
        return {
            "columns": sorted(
                (c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(table)
            ),
            "unique": sorted(
                (u["name"], tuple(u["column_names"])) for u in found.get_unique_constraints(table)
            ),
            "checks": sorted(c["name"] for c in found.get_check_constraints(table)),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"])) for i in found.get_indexes(table)
            ),
            "foreign_keys": sorted(
                (f["name"], tuple(f["constrained_columns"]), f["referred_table"])
                for f in found.get_foreign_keys(table)
            ),
        }

    async with engine.connect() as connection:
        return await connection.run_sync(read)


async def test_existing_keys_move_into_the_system_scope(at_0002: AsyncEngine) -> None:
    await migrations.upgrade(at_0002, "0003")
    rows = await _rows(
        at_0002, "SELECT id, idempotency_scope, idempotency_key FROM transfers ORDER BY id"
    )
    assert rows == [(1, "system", "old-key"), (2, None, None)]


async def test_a_retry_from_before_the_upgrade_still_finds_its_transfer(
    at_0002: AsyncEngine,
) -> None:
    await migrations.upgrade(at_0002)
    sessions = create_session_factory(at_0002)
    # The keyed deposit of 100 into account 1, repeated by the same (system) caller.
    record = await AccountService(sessions).deposit(1, 100, idempotency_key="old-key")
    assert (record.id, record.replayed) == (1, True)
    other = await AccountService(sessions, caller=Caller.feature("imports")).deposit(
        1, 100, idempotency_key="old-key"
    )
    assert other.id != 1
    assert not other.replayed


async def test_notifications_survive_the_rebuild_with_their_ids(at_0002: AsyncEngine) -> None:
    await migrations.upgrade(at_0002, "0003")
    assert await _rows(at_0002, "SELECT id, user_id, transfer_id FROM notifications") == [(7, 1, 2)]
    with pytest.raises(IntegrityError):
        async with at_0002.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO notifications (user_id, transfer_id, message) VALUES (1, 99, 'x')"
                )
            )


async def test_a_key_without_a_scope_is_refused_by_the_database(at_0002: AsyncEngine) -> None:
    await migrations.upgrade(at_0002, "0003")
    with pytest.raises(IntegrityError):
        async with at_0002.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO transfers (destination_account_id, amount, currency, "
                    "idempotency_key) VALUES (1, 5, 'EUR', 'no-scope')"
                )
            )


async def test_downgrade_restores_the_0002_schema_and_rows_exactly(
    at_0002: AsyncEngine,
) -> None:
    before = {t: await _schema(at_0002, t) for t in ("transfers", "notifications")}
    rows_before = await _rows(at_0002, "SELECT * FROM transfers ORDER BY id")
    await migrations.upgrade(at_0002, "0003")
    await migrations.downgrade(at_0002, "0002")
    assert {t: await _schema(at_0002, t) for t in ("transfers", "notifications")} == before
    assert await _rows(at_0002, "SELECT * FROM transfers ORDER BY id") == rows_before
    assert await _rows(at_0002, "SELECT id, transfer_id FROM notifications") == [(7, 2)]


async def test_downgrade_is_refused_while_one_key_lives_in_two_scopes(
    at_0002: AsyncEngine,
) -> None:
    await migrations.upgrade(at_0002, "0003")
    async with at_0002.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO transfers (destination_account_id, amount, currency, "
                "idempotency_scope, idempotency_key) VALUES (2, 5, 'EUR', 'user:1', 'old-key')"
            )
        )
    with pytest.raises(RuntimeError, match="used in more than one scope"):
        await migrations.downgrade(at_0002, "0002")
    assert await migrations.current_revision(at_0002) == "0003"
    assert len(await _rows(at_0002, "SELECT id FROM transfers")) == 3
