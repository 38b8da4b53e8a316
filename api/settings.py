"""Settings of the HTTP layer, read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from db import BrokerSettings, DatabaseSettings, SettingsError


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """The database settings plus what only the API needs.

    `request_timeout` is every request's deadline in seconds, passed to the services as
    `timeout=` (past it: 504, rolled back). `batch_transfers` makes group commit the
    write path of POST /transfers. `max_body_bytes` bounds a request body (413 past it).
    """

    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    # With a BROKER_URL, the app runs the outbox relay in its lifespan (docs/events.md).
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    request_timeout: float = 5.0
    batch_transfers: bool = True
    max_body_bytes: int = 16 * 1024

    def __post_init__(self) -> None:
        if not 0 < self.request_timeout <= 3600:
            raise SettingsError(
                f"API_REQUEST_TIMEOUT must be 0 to 3600 seconds, got {self.request_timeout}"
            )
        if self.max_body_bytes < 256:
            raise SettingsError(
                f"API_MAX_BODY_BYTES must be at least 256, got {self.max_body_bytes}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        """DATABASE_URL, DB_* and BROKER_* as everywhere, plus API_REQUEST_TIMEOUT (seconds),
        API_BATCH_TRANSFERS (true/false) and API_MAX_BODY_BYTES."""
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            database=DatabaseSettings.from_env(env),
            broker=BrokerSettings.from_env(env),
            request_timeout=_number(env, "API_REQUEST_TIMEOUT", defaults.request_timeout),
            batch_transfers=_flag(env, "API_BATCH_TRANSFERS", defaults.batch_transfers),
            max_body_bytes=int(_number(env, "API_MAX_BODY_BYTES", defaults.max_body_bytes)),
        )


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise SettingsError(f"{name} must be a finite number, got {raw!r}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")
