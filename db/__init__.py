"""Infrastructure: settings, the engine with its pool, and the session factory."""

from db.engine import (
    SQLITE_BEGIN_OPTION,
    PoolStatus,
    create_engine,
    engine_settings,
    pool_status,
    read_only_options,
)
from db.monitor import EngineMonitor
from db.session import create_session_factory
from db.settings import POOLER_TRANSACTION, DatabaseSettings, EnvironmentSettings, SettingsError

__all__ = [
    "POOLER_TRANSACTION",
    "SQLITE_BEGIN_OPTION",
    "DatabaseSettings",
    "EngineMonitor",
    "EnvironmentSettings",
    "PoolStatus",
    "SettingsError",
    "create_engine",
    "create_session_factory",
    "engine_settings",
    "pool_status",
    "read_only_options",
]
