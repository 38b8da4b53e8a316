"""The third backend: PostgreSQL through PgBouncer in transaction mode (DB_PG_POOLER=transaction).

Opt-in: a test module (or test) marked `through_pgbouncer` also runs on the `pgbouncer`
backend; every other `pgbouncer` item is deselected at collection. The instance is
TEST_PGBOUNCER_URL if set (.ci/run starts one), else one this run starts itself when the
pgbouncer executable is installed (lab/servers/pgbouncer.py), else the tests skip, saying
how to enable them, or fail when CI=true.

The fixture and the deselection hook live in tests/support/pgbouncer_plugin.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, NoReturn

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from db import DatabaseSettings, create_engine
from db.settings import POOLER_TRANSACTION
from lab.servers.pgbouncer import HOW_TO_INSTALL, find_pgbouncer, through
from tests.support.databases import IN_CI, POSTGRES_URL

PGBOUNCER: Final = "pgbouncer"
ENV_URL: Final = "TEST_PGBOUNCER_URL"

through_pgbouncer = pytest.mark.through_pgbouncer
"""Also run on the `pgbouncer` backend: for a module, `pytestmark = through_pgbouncer`."""


def direct_url(pooled_url: str) -> str:
    """The database behind `pooled_url`, reached directly (what DB_LISTEN_URL points at)."""
    server = make_url(POSTGRES_URL)
    return through(pooled_url, server.host or "127.0.0.1", server.port or 5432)


def through_pooler(url: str, pooler_url: str) -> str:
    """The database of `url`, reached through the PgBouncer at `pooler_url`."""
    pooler = make_url(pooler_url)
    return through(url, pooler.host or "127.0.0.1", pooler.port or 6432)


def pooled_settings(settings: DatabaseSettings) -> DatabaseSettings:
    """`settings` made safe behind the transaction pooler, listening directly."""
    return settings.replace(pg_pooler=POOLER_TRANSACTION, listen_url=direct_url(settings.url))


async def _unreachable_reason(url: str) -> str | None:
    settings = pooled_settings(DatabaseSettings(url=url, pool_size=1, max_overflow=0))
    engine = create_engine(settings.replace(pool_timeout=5))
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to connect means "not available"
        return f"{ENV_URL}={make_url(url).render_as_string()} does not answer ({exc})"
    finally:
        await engine.dispose()
    return None


def _unavailable(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"CI requires PgBouncer: {reason}", pytrace=False)
    pytest.skip(f"{reason}; the PgBouncer backend is off")


@dataclass(frozen=True, slots=True)
class PgBouncerServer:
    """The run's PgBouncer: its URL, or why there is none."""

    url: str | None
    reason: str | None = None
    checked: list[str | None] = field(default_factory=list)

    async def require(self) -> str:
        """The URL, once it answered; skips the test (fails it in CI) if there is none."""
        if self.url is None:
            _unavailable(self.reason or HOW_TO_INSTALL)
        if not self.checked:
            self.checked.append(await _unreachable_reason(self.url))
        if self.checked[0] is not None:
            _unavailable(self.checked[0])
        return self.url


def pgbouncer_executable() -> str:
    """The pgbouncer executable, for tests that start their own instance (skip if missing)."""
    found = find_pgbouncer()
    if found is None:
        _unavailable(HOW_TO_INSTALL)
    return found


__all__ = [
    "PGBOUNCER",
    "PgBouncerServer",
    "direct_url",
    "pgbouncer_executable",
    "pooled_settings",
    "through_pgbouncer",
    "through_pooler",
]
