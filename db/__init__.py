"""Infrastructure: settings, the engine with its pool, and the session factory."""

from db.broker_settings import BrokerSettings
from db.disconnects import is_disconnect
from db.engine import (
    SQLITE_BEGIN_OPTION,
    PoolStatus,
    create_engine,
    engine_settings,
    one_statement_read_options,
    pool_status,
    read_only_options,
)
from db.monitor import EngineMonitor
from db.replicas import (
    Position,
    current_position,
    format_lsn,
    note_write,
    parse_lsn,
    read_connection,
    start_position,
)
from db.session import create_session_factory
from db.settings import POOLER_TRANSACTION, DatabaseSettings, EnvironmentSettings, SettingsError

__all__ = [
    "POOLER_TRANSACTION",
    "SQLITE_BEGIN_OPTION",
    "BrokerSettings",
    "DatabaseSettings",
    "EngineMonitor",
    "EnvironmentSettings",
    "PoolStatus",
    "Position",
    "SettingsError",
    "create_engine",
    "create_session_factory",
    "current_position",
    "engine_settings",
    "format_lsn",
    "is_disconnect",
    "note_write",
    "one_statement_read_options",
    "parse_lsn",
    "pool_status",
    "read_connection",
    "read_only_options",
    "start_position",
]
