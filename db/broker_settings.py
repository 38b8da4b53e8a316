"""Message broker settings (RabbitMQ): BROKER_URL and BROKER_NAMESPACE, read once and then
immutable, through the same mechanism as the database's (db/settings.py)."""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from db.settings import EnvironmentSettings, SettingsError

_SCHEMES: Final = ("amqp", "amqps")
DEFAULT_NAMESPACE: Final = "ledger"
_NAMESPACE: Final = re.compile(r"^[a-z][a-z0-9_-]{0,49}$")


class BrokerSettings(EnvironmentSettings):
    """Where events go: `url` (BROKER_URL, amqp://user:password@host:port/vhost; None turns
    the relay off) and `namespace` (BROKER_NAMESPACE), the prefix of every exchange and
    queue name (docs/events.md), so that several ledgers can share one broker."""

    model_config = SettingsConfigDict(env_prefix="BROKER_")

    # repr=False: the URL may hold a password.
    url: str | None = Field(default=None, repr=False)
    namespace: str = DEFAULT_NAMESPACE

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            # Never repeat the value: it may hold a password.
            raise SettingsError("BROKER_URL is not a URL of the form amqp://host") from None
        if parts.scheme not in _SCHEMES or not parts.hostname:
            raise SettingsError(
                "BROKER_URL must be amqp://user:password@host:port/vhost (or amqps://)"
            )
        if port is not None and not 0 < port < 65536:
            raise SettingsError(f"BROKER_URL has port {port}; a port is 1 to 65535")
        return url

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, namespace: str) -> str:
        if not _NAMESPACE.match(namespace):
            raise SettingsError(
                "BROKER_NAMESPACE must be 1 to 50 of a-z, 0-9, '_' and '-', starting with a "
                f"letter; got {namespace!r}"
            )
        return namespace

    @property
    def enabled(self) -> bool:
        """Whether a broker is configured (BROKER_URL is set)."""
        return self.url is not None

    @property
    def display_url(self) -> str:
        """The URL with any password masked, safe to print or log."""
        if self.url is None:
            return "(no BROKER_URL)"
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        host = parts.hostname or ""
        netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    @classmethod
    def from_env(cls) -> BrokerSettings:
        """The settings as the environment gives them (the same as `BrokerSettings()`)."""
        return cls()
