"""Settings of the HTTP layer: the database's, plus the API_* variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from db import BrokerSettings, DatabaseSettings, EnvironmentSettings

# The server's pool unless DB_POOL_SIZE / DB_MAX_OVERFLOW say otherwise: a fixed pool, no
# overflow. Under load an overflow connection is opened for one request and closed after
# it (on SQLite a connection is also a thread), which cost a third of the CPU per request
# of GET /accounts/{id} at 64 connections (docs/benchmarks.md); 15 kept the database busy
# on both engines in `bench http` without queueing requests on the pool.
API_POOL_SIZE = 15
API_MAX_OVERFLOW = 0


def api_database() -> DatabaseSettings:
    """The database settings from the environment, with the server's pool by default."""
    found = DatabaseSettings()
    defaults = {"pool_size": API_POOL_SIZE, "max_overflow": API_MAX_OVERFLOW}
    unset = {name: value for name, value in defaults.items() if name not in found.model_fields_set}
    return found.replace(**unset) if unset else found


class ApiSettings(EnvironmentSettings):
    """The database settings plus what only the API needs; `ApiSettings()` reads the
    environment (DATABASE_URL and DB_* as everywhere, BROKER_*, and API_*); the pool is
    API_POOL_SIZE connections and no overflow unless DB_POOL_SIZE / DB_MAX_OVERFLOW are set.

    `request_timeout` (API_REQUEST_TIMEOUT) is every request's deadline in seconds, passed
    to the services as `timeout=` (past it: 504, rolled back). `batch_transfers`
    (API_BATCH_TRANSFERS) makes group commit the write path of POST /transfers.
    `max_body_bytes` (API_MAX_BODY_BYTES) bounds a request body (413 past it).
    `token_cache_seconds` (API_TOKEN_CACHE_SECONDS) is how long a token's lookup may be
    reused (0: never); a revocation clears it sooner (services/token_cache.py).
    """

    model_config = SettingsConfigDict(env_prefix="API_")

    database: DatabaseSettings = Field(default_factory=api_database)
    # With a BROKER_URL, the app runs the outbox relay in its lifespan (docs/events.md).
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    request_timeout: float = Field(default=5.0, gt=0, le=3600, allow_inf_nan=False)
    batch_transfers: bool = True
    max_body_bytes: int = Field(default=16 * 1024, ge=256)
    token_cache_seconds: float = Field(default=1.0, ge=0, le=3600, allow_inf_nan=False)

    @classmethod
    def from_env(cls) -> ApiSettings:
        """The settings as the environment gives them (the same as `ApiSettings()`)."""
        return cls()
