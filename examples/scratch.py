"""What the examples share: a throw-away migrated SQLite ledger, an optional PostgreSQL
server, and one way to print what went wrong and what the project does instead."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import DatabaseSettings, create_engine, create_session_factory, migrations
from services import AccountService, UserService

Sessions = async_sessionmaker[AsyncSession]

# The examples that need PostgreSQL connect here; without a server they say how to run them.
POSTGRES_URL = os.environ.get(
    "EXAMPLES_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


def pitfall(finding: str) -> None:
    """Print what goes wrong (tests/examples checks these lines)."""
    print(f"pitfall: {finding}")


def fix(finding: str) -> None:
    """Print what the project's way does instead."""
    print(f"fix:     {finding}")


def skipped(reason: str) -> None:
    print(f"skipped: {reason}")


@asynccontextmanager
async def scratch_ledger(**settings: Any) -> AsyncIterator[tuple[AsyncEngine, Sessions]]:
    """A migrated SQLite ledger in a temporary folder, removed afterwards; `settings` are
    DatabaseSettings fields (pool_size=1, ...)."""
    with tempfile.TemporaryDirectory(prefix="ledger-example-") as folder:
        url = f"sqlite+aiosqlite:///{folder}/ledger.db"
        engine = create_engine(DatabaseSettings(url=url, **settings))
        try:
            await migrations.upgrade(engine)
            yield engine, create_session_factory(engine)
        finally:
            await engine.dispose()  # each pooled aiosqlite connection holds a thread


async def funded_accounts(sessions: Sessions, count: int = 2, balance: int = 10_000) -> list[int]:
    """`count` EUR accounts of one user, each holding `balance` minor units."""
    user = await UserService(sessions).register("ada@example.com", "Ada")
    accounts = AccountService(sessions)
    ids = [(await accounts.open(user.id, "EUR")).id for _ in range(count)]
    for account_id in ids:
        await accounts.deposit(account_id, balance)
    return ids


async def postgres_engine(**settings: Any) -> AsyncEngine | None:
    """An engine on EXAMPLES_POSTGRES_URL, or None (and how to get one) when none answers."""
    engine = create_engine(DatabaseSettings(url=POSTGRES_URL, **settings))
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to connect means: no server to use here
        await engine.dispose()
        skipped(
            f"this pitfall needs PostgreSQL ({type(exc).__name__} at {POSTGRES_URL}); "
            "start one, or set EXAMPLES_POSTGRES_URL=postgresql+asyncpg://user:pw@host/db"
        )
        return None
    return engine
