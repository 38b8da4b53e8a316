"""services.db_errors.translate: what a failure means, and what it leaves alone."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import DatabaseSettings, create_engine
from services.db_errors import translate
from services.errors import DatabaseUnavailable
from services.transactions import run_in_transaction
from tests.support.ledger import open_account


def test_a_refused_connection_is_database_unavailable_with_its_reason() -> None:
    error = translate(ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)"))
    assert isinstance(error, DatabaseUnavailable)
    assert "Connect call failed" in str(error)


async def test_a_connect_timeout_names_the_setting_that_bounds_it(
    settings: DatabaseSettings,
) -> None:
    engine = create_engine(settings.replace(pool_timeout=0.25))
    try:
        error = translate(TimeoutError(), engine)
    finally:
        await engine.dispose()
    assert isinstance(error, DatabaseUnavailable)
    assert "DB_POOL_TIMEOUT=0.25s" in str(error)


def test_an_error_that_is_not_the_database_s_is_left_alone() -> None:
    assert translate(ValueError("a bug")) is None


async def test_a_broken_constraint_stays_the_driver_s_error(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    account = await open_account(sessions)

    async def overdraw(session: AsyncSession) -> None:
        # Behind the services' back: only a bug would do this, so it must not be disguised.
        await session.execute(
            text("UPDATE accounts SET balance = -1 WHERE id = :id"), {"id": account.id}
        )

    with pytest.raises(IntegrityError):
        await run_in_transaction(sessions, overdraw)
