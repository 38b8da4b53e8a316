"""Alembic environment, from Alembic's async template.

Two ways in:
- `alembic upgrade head` on the command line: no event loop is running, so we start one
  with asyncio.run() and migrate over an AsyncEngine built exactly like the app's.
- From code that already runs inside an event loop (tests, `ledgerctl migrate`), where
  asyncio.run() would fail: the caller opens an AsyncConnection, calls
  `await conn.run_sync(...)`, and hands the synchronous Connection over in
  `config.attributes["connection"]` (see db/migrations.py).

`alembic revision [--autogenerate]` goes through here too: db/autogenerate.py numbers the
new revision and renders it so that it runs and passes `make lint` as written.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
from logging.config import fileConfig
from pathlib import Path
from typing import Any

from alembic import context
from alembic.util import CommandError
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from db import DatabaseSettings, SettingsError, create_engine
from db.autogenerate import number_revisions, render_item
from db.settings import DEFAULT_SQLITE_FILE
from models import Base

config = context.config

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# Callers may compare against other metadata (the autogenerate tests add a model to a copy).
target_metadata: MetaData = config.attributes.get("target_metadata", Base.metadata)


class DatabaseProblem(CommandError):
    """The settings are wrong or the database cannot be opened; the message is one line."""


def database_settings() -> DatabaseSettings:
    """DATABASE_URL wins over alembic.ini's sqlalchemy.url; the settings default comes last.

    The default SQLite file is anchored next to alembic.ini, not in the current directory,
    so `alembic -c path/to/alembic.ini ...` run from elsewhere migrates the project's
    database instead of creating a stray empty one there.
    """
    try:
        settings = DatabaseSettings.from_env()
    except SettingsError as exc:
        raise DatabaseProblem(str(exc)) from None
    if os.environ.get("DATABASE_URL"):
        return settings
    ini_url = config.get_main_option("sqlalchemy.url")
    if ini_url:
        return settings.with_url(ini_url)
    if config.config_file_name is None:
        return settings
    project = Path(config.config_file_name).resolve().parent
    return settings.with_url(f"sqlite+aiosqlite:///{project / DEFAULT_SQLITE_FILE}")


def configure_options() -> dict[str, Any]:
    """What every mode passes to context.configure()."""
    chosen = getattr(config.cmd_opts, "rev_id", None) if config.cmd_opts else None
    return {
        "target_metadata": target_metadata,
        "compare_type": True,
        "render_item": render_item,
        "process_revision_directives": number_revisions(context.script, chosen),
    }


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (`alembic upgrade head --sql`)."""
    settings = database_settings()
    context.configure(
        url=settings.url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=settings.backend == "sqlite",
        **configure_options(),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_revision_without_database() -> None:
    """`alembic revision -m ...` without --autogenerate: only number and write the file.

    Alembic runs env.py for it (revision_environment = true, so the file gets the next
    number), but there is nothing to compare, so no database is opened.
    """
    settings = database_settings()
    context.configure(
        url=settings.url,
        as_sql=True,
        # Offline mode would print the alembic_version DDL; nobody asked for it here.
        output_buffer=io.StringIO(),
        **configure_options(),
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    """Run the migrations on a synchronous connection (inside run_sync)."""
    context.configure(
        connection=connection,
        # SQLite cannot ALTER most things in place; batch mode recreates the table.
        render_as_batch=connection.dialect.name == "sqlite",
        # Our engine emits its own BEGIN on SQLite (db/sqlite_engine.py), so DDL there is
        # transactional too: a failing migration leaves no half-built schema behind.
        transactional_ddl=True,
        **configure_options(),
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations(settings: DatabaseSettings) -> None:
    """Build an engine like the app's (same SQLite pragmas and BEGIN handling) and migrate."""
    try:
        engine = create_engine(settings)
    except SettingsError as exc:
        raise DatabaseProblem(str(exc)) from None
    try:
        try:
            connection = await engine.connect()
        except (OSError, DBAPIError) as exc:
            # asyncpg raises OSError as it is when nothing listens; SQLite a DBAPIError.
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatabaseProblem(
                f"cannot reach the database at {settings.display_url}: {reason}"
            ) from None
        try:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
        finally:
            await connection.close()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    """Migrate over a connection handed in by the caller, or over a new async engine."""
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
        return
    try:
        asyncio.run(run_async_migrations(database_settings()))
    except DatabaseProblem as exc:
        if config.cmd_opts is None:
            raise  # called from code: a CommandError it can catch
        # The alembic command line: one line and exit 1, as `ledgerctl migrate` does
        # (Alembic itself would print the message twice, or a traceback for anything else).
        sys.exit(f"alembic: error: {exc}")


def is_plain_revision() -> bool:
    """Whether this is `alembic revision` without --autogenerate."""
    opts = config.cmd_opts
    if opts is None or not hasattr(opts, "cmd"):
        return False
    command = opts.cmd[0]
    return getattr(command, "__name__", "") == "revision" and not opts.autogenerate


if context.is_offline_mode():
    run_migrations_offline()
elif is_plain_revision():
    run_revision_without_database()
else:
    run_migrations_online()
