"""Revision 0004 (roles, API tokens): existing users become plain users; down and up again."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from db import DatabaseSettings, create_engine, migrations
from tests.support.backends import NewDatabase


async def test_existing_users_become_users_and_the_role_is_checked(
    new_database: NewDatabase,
) -> None:
    engine = create_engine(DatabaseSettings(url=await new_database()))
    try:
        await migrations.upgrade(engine, "0003")
        async with engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO users (email, name) VALUES ('a@example.com', 'A')")
            )
        await migrations.upgrade(engine, "0004")
        async with engine.connect() as connection:
            assert list(await connection.execute(text("SELECT email, role FROM users"))) == [
                ("a@example.com", "user")
            ]
        with pytest.raises(IntegrityError):
            async with engine.begin() as connection:
                await connection.execute(text("UPDATE users SET role = 'admin'"))

        await migrations.downgrade(engine, "0003")
        async with engine.connect() as connection:
            columns = await connection.run_sync(
                lambda c: {col["name"] for col in inspect(c).get_columns("users")}
            )
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert "role" not in columns
        assert "api_tokens" not in tables
        await migrations.upgrade(engine)
        await migrations.check(engine)
    finally:
        await engine.dispose()
