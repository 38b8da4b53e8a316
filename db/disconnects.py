"""Which failures mean "this connection, or this server, is gone", and the pool's reaction.

A failover ends every connection to the old primary, in ways SQLAlchemy's asyncpg
dialect does not all recognise as disconnects: a refused or reset socket, a server that
is shutting down or starting up (57P01-57P03), a node that became read-only while the
pool still holds connections to it (25006 outside a read-only transaction: a demoted
primary), no host matching `target_session_attrs` yet, and asyncpg's protocol left in a
state it cannot leave ("cannot switch to state ...; another operation is in progress").
`watch_disconnects` marks all of them as disconnects, so SQLAlchemy invalidates the
connection and, with it, every connection the pool opened before (its default
`invalidate_pool_on_disconnect`): after a failover the pool reconnects through the
multi-host URL to the new primary instead of lending out connections to the old one.

`is_disconnect` is the one rule, also used by services/db_errors.py to type the error.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

# SQLSTATE class 08: connection exception (e.g. 08003, "connection was closed in the
# middle of operation"); 57P01-57P03: admin shutdown, crash shutdown, cannot connect now.
_CONNECTION_EXCEPTION_CLASS: Final = "08"
_SHUTDOWN_STATES: Final = frozenset({"57P01", "57P02", "57P03"})
# read_only_sql_transaction: in a transaction we did not open read-only, the node is no
# longer the primary.
READ_ONLY_TRANSACTION: Final = "25006"
# asyncpg's errors raised by the client itself, not the server: a broken protocol state,
# or no host that matches target_session_attrs.
_CLIENT_ERRORS: Final = frozenset({"InternalClientError", "InterfaceError"})


def is_disconnect(exc: BaseException, *, read_only: bool = False) -> bool:
    """Whether `exc` means the connection or its server is gone (or is no longer the
    primary): a failure that a fresh connection, maybe to another node, can get past.

    `read_only`: whether the failed transaction was opened read-only (then a
    read-only error is the caller's bug, not a demoted primary).
    """
    if isinstance(exc, OSError):  # refused, reset, unreachable, connect timeout
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig: Any = exc.orig
    sqlstate = str(getattr(orig, "sqlstate", None) or "")
    if sqlstate.startswith(_CONNECTION_EXCEPTION_CLASS) or sqlstate in _SHUTDOWN_STATES:
        return True
    if sqlstate == READ_ONLY_TRANSACTION and not read_only:
        return True
    return type(orig).__name__ in _CLIENT_ERRORS or isinstance(orig, OSError)


def watch_disconnects(engine: AsyncEngine) -> None:
    """Have SQLAlchemy treat every `is_disconnect` failure as a disconnect: the connection
    is discarded and the pool's older connections are replaced on their next checkout."""

    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        if context.is_disconnect or context.sqlalchemy_exception is None:
            return
        options = context.connection.get_execution_options() if context.connection else {}
        read_only = bool(options.get("postgresql_readonly"))
        if is_disconnect(context.sqlalchemy_exception, read_only=read_only):
            context.is_disconnect = True
