"""Where a workload runs: one fresh database, reachable through every driver."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy.engine import make_url

Backend = Literal["sqlite", "postgresql"]


@dataclass(frozen=True, slots=True)
class Target:
    """A database as an async SQLAlchemy URL, with what the raw drivers need to reach it."""

    url: str
    # The same database through PgBouncer in transaction mode, when the run has one.
    pooler_url: str | None = None

    @property
    def backend(self) -> Backend:
        """'sqlite' or 'postgresql'."""
        name = make_url(self.url).get_backend_name()
        if name == "sqlite":
            return "sqlite"
        if name == "postgresql":
            return "postgresql"
        raise ValueError(f"unsupported backend {name!r}")

    @property
    def sqlite_path(self) -> str:
        """The SQLite file, for sqlite3 and aiosqlite."""
        database = make_url(self.url).database
        if self.backend != "sqlite" or not database:
            raise ValueError(f"{self.url} is not a SQLite file")
        return database

    @property
    def postgres_dsn(self) -> str:
        """A libpq URL (postgresql://…) for psycopg and asyncpg."""
        if self.backend != "postgresql":
            raise ValueError(f"{self.url} is not a PostgreSQL URL")
        return make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)

    def sync_url(self) -> str:
        """The URL for a synchronous SQLAlchemy engine (sqlite3 / psycopg)."""
        driver = "sqlite" if self.backend == "sqlite" else "postgresql+psycopg"
        return make_url(self.url).set(drivername=driver).render_as_string(hide_password=False)
