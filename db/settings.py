"""Database settings, read once from the environment and then immutable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_SQLITE_FILE = "ledger.db"

# Whether a DatabaseSettings built without `sqlite_one_hop` uses the one-hop adapter. A
# module setting so that a test run can build every engine on the stock adapter
# (`DB_SQLITE_ONE_HOP=false pytest`, see tests/conftest.py); applications set the field.
SQLITE_ONE_HOP_DEFAULT = True

# URL query parameters whose value is a secret (asyncpg reads these from the query).
_SECRET_QUERY_KEYS = frozenset({"password", "sslpassword"})

# DB_PG_POOLER values: which pooler sits between the engine and PostgreSQL, if any.
# Session pooling needs nothing special (the engine owns its server connection for as
# long as it holds the client one), so only transaction pooling is a mode of its own.
POOLER_TRANSACTION = "transaction"
_POOLERS = (POOLER_TRANSACTION,)


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    """Everything needed to build an engine. Build it with `from_env()` or directly.

    Pool settings matter on both engines: SQLite admits one writer at a time, so a large
    pool only queues writers behind the file lock, while PostgreSQL pays a full
    connection handshake for every connection the pool does not keep.
    """

    url: str = f"sqlite+aiosqlite:///{DEFAULT_SQLITE_FILE}"
    pool_size: int = 5
    max_overflow: int = 10
    pool_timeout: float = 30.0
    pool_recycle: int = 3600
    pool_pre_ping: bool = False
    echo: bool = False
    busy_timeout_ms: int = 5_000
    statement_timeout_ms: int = 30_000
    lock_timeout_ms: int = 10_000
    sqlite_one_hop: bool = field(default_factory=lambda: SQLITE_ONE_HOP_DEFAULT)
    pg_pooler: str | None = None
    # Where job workers LISTEN for wake-ups (PostgreSQL); None: the DATABASE_URL. A pooler
    # in transaction mode cannot carry a LISTEN, so there it must point at the server.
    listen_url: str | None = None
    # Where reads that may run on a standby go (PostgreSQL; db/replicas.py); None: the
    # primary, like everything else.
    read_url: str | None = None

    def __post_init__(self) -> None:
        try:
            parsed = make_url(self.url)
        except ArgumentError:
            raise SettingsError(
                "DATABASE_URL is not a database URL of the form "
                "driver://user:password@host:port/database"
            ) from None
        except ValueError:
            # make_url raises a bare ValueError for a port that is not a number. Its
            # message quotes the "port", which after a typo such as a missing "@host" is
            # the password: never repeat it.
            raise SettingsError("DATABASE_URL has a port that is not a number") from None
        if parsed.port is not None and not 0 < parsed.port < 65536:
            raise SettingsError(f"DATABASE_URL has port {parsed.port}; a port is 1 to 65535")
        if parsed.get_backend_name() not in ("sqlite", "postgresql"):
            raise SettingsError(
                f"DATABASE_URL uses {parsed.get_backend_name()!r}; "
                "supported are sqlite+aiosqlite:// and postgresql+asyncpg://"
            )
        expected_driver = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}[
            parsed.get_backend_name()
        ]
        if parsed.get_driver_name() != expected_driver:
            raise SettingsError(
                f"DATABASE_URL uses the driver {parsed.get_driver_name()!r}; this project is async "
                f"and needs {parsed.get_backend_name()}+{expected_driver}://"
            )
        for name, value in (
            ("DB_POOL_SIZE", self.pool_size),
            ("DB_BUSY_TIMEOUT_MS", self.busy_timeout_ms),
            ("DB_STATEMENT_TIMEOUT_MS", self.statement_timeout_ms),
            ("DB_LOCK_TIMEOUT_MS", self.lock_timeout_ms),
        ):
            if value < 1:
                raise SettingsError(f"{name} must be at least 1, got {value}")
        if self.max_overflow < 0:
            raise SettingsError(f"DB_MAX_OVERFLOW must be 0 or more, got {self.max_overflow}")
        if self.pool_timeout <= 0:
            raise SettingsError(f"DB_POOL_TIMEOUT must be positive, got {self.pool_timeout}")
        self._check_pooler(parsed.get_backend_name())
        if self.listen_url is not None:
            _check_listen_url(self.listen_url, parsed.get_backend_name(), "DB_LISTEN_URL")
        if self.read_url is not None:
            _check_listen_url(self.read_url, parsed.get_backend_name(), "DATABASE_READ_URL")

    def _check_pooler(self, backend: str) -> None:
        if self.pg_pooler is None:
            return
        if self.pg_pooler not in _POOLERS:
            raise SettingsError(
                f"DB_PG_POOLER must be {POOLER_TRANSACTION!r} or unset, got {self.pg_pooler!r} "
                "(session pooling needs no setting)"
            )
        if backend != "postgresql":
            raise SettingsError(
                f"DB_PG_POOLER={self.pg_pooler} is for PostgreSQL behind PgBouncer; "
                f"DATABASE_URL is {backend}"
            )
        # LISTEN registers on the server session, which a transaction pooler hands to
        # other clients between transactions: notifications would go to whoever holds it.
        if self.listen_url is None or _same_database(self.listen_url, self.url):
            raise SettingsError(
                f"DB_PG_POOLER={self.pg_pooler} needs DB_LISTEN_URL: a direct connection to "
                "PostgreSQL, not through the pooler (LISTEN does not survive transaction pooling)"
            )

    @property
    def pooled_by_transaction(self) -> bool:
        """True when a transaction pooler (PgBouncer pool_mode=transaction) is in front."""
        return self.pg_pooler == POOLER_TRANSACTION

    @property
    def sqlalchemy_url(self) -> URL:
        """The parsed URL."""
        return make_url(self.url)

    @property
    def backend(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self.sqlalchemy_url.get_backend_name()

    @property
    def display_url(self) -> str:
        """The URL with any password masked, safe to print or log.

        asyncpg also takes the password as a query parameter (`?password=...`), which
        render_as_string() would print as it is.
        """
        url = self.sqlalchemy_url
        shown = url.set(query={}).render_as_string(hide_password=True)
        pairs = [
            f"{key}={'***' if key.lower() in _SECRET_QUERY_KEYS else value}"
            for key, values in url.query.items()
            for value in ((values,) if isinstance(values, str) else values)
        ]
        return f"{shown}?{'&'.join(pairs)}" if pairs else shown

    @property
    def listener_url(self) -> str:
        """The URL job workers LISTEN on: DB_LISTEN_URL, or else DATABASE_URL."""
        return self.url if self.listen_url is None else self.listen_url

    def with_url(self, url: str) -> DatabaseSettings:
        """A copy pointing at another database, every other setting kept."""
        return replace(self, url=url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DatabaseSettings:
        """Read `DATABASE_URL` and the `DB_*` variables; unset ones keep their defaults."""
        env = os.environ if environ is None else environ
        defaults = cls()
        url = env.get("DATABASE_URL") or f"sqlite+aiosqlite:///{Path(DEFAULT_SQLITE_FILE)}"
        return cls(
            url=url,
            pool_size=_int(env, "DB_POOL_SIZE", defaults.pool_size),
            max_overflow=_int(env, "DB_MAX_OVERFLOW", defaults.max_overflow),
            pool_timeout=_float(env, "DB_POOL_TIMEOUT", defaults.pool_timeout),
            pool_recycle=_int(env, "DB_POOL_RECYCLE", defaults.pool_recycle),
            pool_pre_ping=_bool(env, "DB_POOL_PRE_PING", defaults.pool_pre_ping),
            echo=_bool(env, "DB_ECHO", defaults.echo),
            busy_timeout_ms=_int(env, "DB_BUSY_TIMEOUT_MS", defaults.busy_timeout_ms),
            statement_timeout_ms=_int(
                env, "DB_STATEMENT_TIMEOUT_MS", defaults.statement_timeout_ms
            ),
            lock_timeout_ms=_int(env, "DB_LOCK_TIMEOUT_MS", defaults.lock_timeout_ms),
            sqlite_one_hop=_bool(env, "DB_SQLITE_ONE_HOP", defaults.sqlite_one_hop),
            pg_pooler=_optional(env, "DB_PG_POOLER"),
            listen_url=_optional(env, "DB_LISTEN_URL"),
            read_url=_optional(env, "DATABASE_READ_URL"),
        )


def _check_listen_url(listen_url: str, backend: str, name: str) -> None:
    """A second PostgreSQL URL (`name` is its variable): DB_LISTEN_URL, DATABASE_READ_URL."""
    try:
        parsed = make_url(listen_url)
    except (ArgumentError, ValueError):
        # Never repeat the value: it may hold a password.
        raise SettingsError(f"{name} is not a database URL") from None
    if backend != "postgresql":
        raise SettingsError(f"{name} applies to PostgreSQL only; DATABASE_URL is SQLite")
    if (parsed.get_backend_name(), parsed.get_driver_name()) != ("postgresql", "asyncpg"):
        raise SettingsError(f"{name} must be a postgresql+asyncpg:// URL")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise SettingsError(f"{name} has port {parsed.port}; a port is 1 to 65535")


def _same_database(first: str, second: str) -> bool:
    try:
        return make_url(first) == make_url(second)
    except (ArgumentError, ValueError):
        return first.strip() == second.strip()


def _optional(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    return None if raw is None or raw.strip() == "" else raw.strip()


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise SettingsError(f"{name} must be a finite number of seconds, got {raw!r}")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name} must be one of true/false/1/0/yes/no/on/off, got {raw!r}")
