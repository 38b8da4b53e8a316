"""Message broker settings (RabbitMQ), read once from the environment and then immutable."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from db.settings import SettingsError

_SCHEMES: Final = ("amqp", "amqps")
DEFAULT_NAMESPACE: Final = "ledger"
_NAMESPACE: Final = re.compile(r"^[a-z][a-z0-9_-]{0,49}$")


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Where events go: `url` (BROKER_URL, amqp://user:password@host:port/vhost; None turns
    the relay off) and `namespace` (BROKER_NAMESPACE), the prefix of every exchange and
    queue name (docs/events.md), so that several ledgers can share one broker."""

    url: str | None = None
    namespace: str = DEFAULT_NAMESPACE

    def __post_init__(self) -> None:
        if self.url is not None:
            try:
                parts = urlsplit(self.url)
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
        if not _NAMESPACE.match(self.namespace):
            raise SettingsError(
                "BROKER_NAMESPACE must be 1 to 50 of a-z, 0-9, '_' and '-', starting with a "
                f"letter; got {self.namespace!r}"
            )

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
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BrokerSettings:
        """Read BROKER_URL and BROKER_NAMESPACE; unset ones keep their defaults."""
        env = os.environ if environ is None else environ
        url = env.get("BROKER_URL", "").strip() or None
        namespace = env.get("BROKER_NAMESPACE", "").strip() or DEFAULT_NAMESPACE
        return cls(url=url, namespace=namespace)
