"""`--database-url` replaces DATABASE_URL before the DB_* settings are checked, so they are
judged against the database the command will use (no server is needed: the checks, and a
refused connection, come first)."""

from __future__ import annotations

from tests.support.cli_runs import ledgerctl_process

POOLED = {"DB_PG_POOLER": "transaction", "DB_LISTEN_URL": "postgresql+asyncpg://u@127.0.0.1:2/db"}
NOWHERE = "postgresql+asyncpg://u@127.0.0.1:1/db"  # port 1: refused at once


async def test_a_postgresql_flag_satisfies_a_pooler_setting_that_an_unset_url_would_not() -> None:
    done = await ledgerctl_process(
        "--database-url", NOWHERE, "audit", env={**POOLED, "DATABASE_URL": ""}
    )
    line = done.one_line_error()
    assert "is sqlite" not in line
    assert "127.0.0.1:1" in line  # the settings were accepted and the flag's server tried


async def test_a_sqlite_flag_is_refused_with_a_pooler_setting() -> None:
    done = await ledgerctl_process(
        "--database-url",
        "sqlite+aiosqlite:///x.db",
        "audit",
        env={**POOLED, "DATABASE_URL": NOWHERE},
    )
    assert "DB_PG_POOLER=transaction is for PostgreSQL" in done.one_line_error()
