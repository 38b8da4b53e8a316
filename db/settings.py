"""Database settings: DATABASE_URL and the DB_* variables, read once and then immutable.

Both settings classes (this one and api.settings.ApiSettings) are pydantic-settings
models built on `EnvironmentSettings`: a value passed to the constructor wins, the
environment gives the rest, the field's default the remainder. A bad value is one
`SettingsError` line that names its variable: `NAME must be ..., got 'value'`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

# DEFAULT_SQLITE_FILE: re-exported for alembic/env.py and older callers.
from db.checkout import DEFAULT_SQLITE_FILE as DEFAULT_SQLITE_FILE
from db.checkout import default_sqlite_path

# URL query parameters whose value is a secret (asyncpg reads these from the query).
_SECRET_QUERY_KEYS = frozenset({"password", "sslpassword"})

# DB_PG_POOLER values: which pooler sits between the engine and PostgreSQL, if any.
# Session pooling needs nothing special (the engine owns its server connection for as
# long as it holds the client one), so only transaction pooling is a mode of its own.
POOLER_TRANSACTION = "transaction"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


# What a pydantic error type means, in the words of "NAME must be ..., got 'value'".
_EXPECTATIONS: dict[str, str] = {
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "int_type": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "bool_parsing": "one of true/false/1/0/yes/no/on/off",
    "bool_type": "one of true/false/1/0/yes/no/on/off",
    "greater_than": "more than {gt}",
    "greater_than_equal": "at least {ge}",
    "less_than": "less than {lt}",
    "less_than_equal": "at most {le}",
    "literal_error": "{expected} or unset",
    "string_type": "a string",
}


class EnvironmentSettings(BaseSettings):
    """Settings read from the environment, with one error format for a bad variable.

    Construct with keyword arguments to override the environment (tests, tools); an
    empty variable counts as unset. Every subclass names its fields' variables through
    `env_prefix` or a `validation_alias`.
    """

    model_config = SettingsConfigDict(
        frozen=True,
        env_ignore_empty=True,
        str_strip_whitespace=True,
        validate_by_name=True,
        validate_by_alias=True,
        extra="ignore",
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise SettingsError(self._one_line(error)) from None

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes` applied and checked; every other value kept as it is."""
        return type(self)(**{**dict(self), **changes})

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable that sets `field`."""
        alias = cls.model_fields[field].validation_alias
        if isinstance(alias, str):
            return alias
        return f"{cls.model_config.get('env_prefix', '')}{field}".upper()

    @classmethod
    def _one_line(cls, error: ValidationError) -> str:
        first: ErrorDetails = error.errors(include_url=False)[0]
        context = first.get("ctx", {})
        if isinstance(context.get("error"), SettingsError):
            # A check of this module's own: its message is already the one line.
            return str(context["error"])
        names = {cls.variable(name): name for name in cls.model_fields}
        located = str(first["loc"][0]) if first["loc"] else ""
        field = names.get(located.upper(), located)
        name = cls.variable(field) if field in cls.model_fields else located
        expected = _EXPECTATIONS.get(first["type"])
        if expected is None:
            return f"{name} is not valid: {first['msg']}"
        bounds = {
            k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in context.items()
        }
        return f"{name} must be {expected.format(**bounds)}, got {first['input']!r}"


def _port_error(variable: str, url: URL) -> str | None:
    if url.port is not None and not 0 < url.port < 65536:
        return f"{variable} has port {url.port}; a port is 1 to 65535"
    return None


class DatabaseSettings(EnvironmentSettings):
    """Everything needed to build an engine: `DatabaseSettings()` reads the environment.

    Pool settings matter on both engines: SQLite admits one writer at a time, so a large
    pool only queues writers behind the file lock, while PostgreSQL pays a full
    connection handshake for every connection the pool does not keep.
    """

    model_config = SettingsConfigDict(env_prefix="DB_")

    # repr=False: a URL may hold a password, and a settings object ends up in logs.
    url: str = Field(
        # The checkout's ledger.db wherever a command runs (db/checkout.py).
        default=f"sqlite+aiosqlite:///{default_sqlite_path()}",
        validation_alias="DATABASE_URL",
        repr=False,
    )
    pool_size: int = Field(default=5, ge=1)
    max_overflow: int = Field(default=10, ge=0)
    pool_timeout: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    pool_recycle: int = 3600
    pool_pre_ping: bool = False
    echo: bool = False
    busy_timeout_ms: int = Field(default=5_000, ge=1)
    statement_timeout_ms: int = Field(default=30_000, ge=1)
    lock_timeout_ms: int = Field(default=10_000, ge=1)
    # DB_SQLITE_ONE_HOP=false: SQLAlchemy's stock aiosqlite adapter (db/sqlite_one_hop.py).
    sqlite_one_hop: bool = True
    pg_pooler: str | None = None
    # Where job workers LISTEN for wake-ups (PostgreSQL); None: the DATABASE_URL. A pooler
    # in transaction mode cannot carry a LISTEN, so there it must point at the server.
    listen_url: str | None = Field(default=None, repr=False)
    # Where reads that may run on a standby go (PostgreSQL; db/replicas.py); None: the
    # primary, like everything else.
    read_url: str | None = Field(default=None, validation_alias="DATABASE_READ_URL", repr=False)

    # The drivers this project is built on, per backend.
    DRIVERS: ClassVar[dict[str, str]] = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        try:
            parsed = make_url(url)
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
        if (port_error := _port_error("DATABASE_URL", parsed)) is not None:
            raise SettingsError(port_error)
        backend = parsed.get_backend_name()
        if backend not in cls.DRIVERS:
            raise SettingsError(
                f"DATABASE_URL uses {backend!r}; "
                "supported are sqlite+aiosqlite:// and postgresql+asyncpg://"
            )
        if parsed.get_driver_name() != cls.DRIVERS[backend]:
            raise SettingsError(
                f"DATABASE_URL uses the driver {parsed.get_driver_name()!r}; this project is async "
                f"and needs {backend}+{cls.DRIVERS[backend]}://"
            )
        return url

    @field_validator("pg_pooler")
    @classmethod
    def _check_pooler_mode(cls, mode: str | None) -> str | None:
        if mode is not None and mode != POOLER_TRANSACTION:
            raise SettingsError(
                f"DB_PG_POOLER must be {POOLER_TRANSACTION!r} or unset, got {mode!r} "
                "(session pooling needs no setting)"
            )
        return mode

    @field_validator("listen_url", "read_url")
    @classmethod
    def _check_second_url(cls, url: str | None, info: ValidationInfo) -> str | None:
        """A second PostgreSQL URL: DB_LISTEN_URL, DATABASE_READ_URL."""
        if url is None:
            return None
        assert info.field_name is not None
        name = cls.variable(info.field_name)
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError):
            # Never repeat the value: it may hold a password.
            raise SettingsError(f"{name} is not a database URL") from None
        if (parsed.get_backend_name(), parsed.get_driver_name()) != ("postgresql", "asyncpg"):
            raise SettingsError(f"{name} must be a postgresql+asyncpg:// URL")
        if (port_error := _port_error(name, parsed)) is not None:
            raise SettingsError(port_error)
        return url

    @model_validator(mode="after")
    def _check_combination(self) -> Self:
        backend = self.backend
        if self.pg_pooler is not None:
            if backend != "postgresql":
                raise SettingsError(
                    f"DB_PG_POOLER={self.pg_pooler} is for PostgreSQL behind PgBouncer; "
                    f"DATABASE_URL is {backend}"
                )
            # LISTEN registers on the server session, which a transaction pooler hands to
            # other clients between transactions: notifications would go to whoever holds it.
            if self.listen_url is None or make_url(self.listen_url) == self.sqlalchemy_url:
                raise SettingsError(
                    f"DB_PG_POOLER={self.pg_pooler} needs DB_LISTEN_URL: a direct connection "
                    "to PostgreSQL, not through the pooler (LISTEN does not survive "
                    "transaction pooling)"
                )
        for field in ("listen_url", "read_url"):
            if getattr(self, field) is not None and backend != "postgresql":
                raise SettingsError(
                    f"{self.variable(field)} applies to PostgreSQL only; DATABASE_URL is SQLite"
                )
        return self

    @classmethod
    def from_env(cls) -> DatabaseSettings:
        """The settings as the environment gives them (the same as `DatabaseSettings()`)."""
        return cls()

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
        return self.replace(url=url)
