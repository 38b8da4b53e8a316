"""Alembic environment, from Alembic's async template.

Two ways in:
- `alembic upgrade head` on the command line: no event loop is running, so we start one
  with asyncio.run() and migrate over an AsyncEngine built exactly like the app's.
- From code that already runs inside an event loop (tests, `ledgerctl migrate`), where
  asyncio.run() would fail: the caller opens an AsyncConnection, calls
  `await conn.run_sync(...)`, and hands the synchronous Connection over in
  `config.attributes["connection"]` (see db/migrations.py).
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from db import DatabaseSettings, create_engine
from models import Base

config = context.config

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_settings() -> DatabaseSettings:
    """DATABASE_URL wins over alembic.ini's sqlalchemy.url; the settings default comes last."""
    settings = DatabaseSettings.from_env()
    if os.environ.get("DATABASE_URL"):
        return settings
    ini_url = config.get_main_option("sqlalchemy.url")
    return settings.with_url(ini_url) if ini_url else settings


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (`alembic upgrade head --sql`)."""
    settings = database_settings()
    context.configure(
        url=settings.url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=settings.backend == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    """Run the migrations on a synchronous connection (inside run_sync)."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode recreates the table.
        render_as_batch=connection.dialect.name == "sqlite",
        # Our engine emits its own BEGIN on SQLite (db/engine.py), so DDL there is
        # transactional too: a failing migration leaves no half-built schema behind.
        transactional_ddl=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    """Build an engine like the app's (same SQLite pragmas and BEGIN handling) and migrate."""
    engine = create_engine(database_settings())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    """Migrate over a connection handed in by the caller, or over a new async engine."""
    connection = config.attributes.get("connection")
    if connection is None:
        asyncio.run(run_async_migrations())
    else:
        do_run_migrations(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
