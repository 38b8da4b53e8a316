"""Make a cancelled SQLite statement actually stop.

aiosqlite runs every call on the connection's own thread. When the awaiting task is
cancelled, the statement keeps running there, and whatever SQLAlchemy does next on that
connection (rollback, close) queues behind it: a timeout would return only when the
statement finishes on its own. sqlite3's `interrupt()` is safe to call from another
thread and makes the running statement fail at its next step.
"""

from __future__ import annotations

import asyncio

import aiosqlite
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_


def interrupt_sqlite_on_cancel(engine: AsyncEngine) -> None:
    """On cancellation of a statement, interrupt it and keep the connection.

    SQLAlchemy treats a cancellation as a disconnect and closes the connection. Here that
    is worse than useless: the interrupted sqlite3 statement is still referenced from the
    traceback, so `close()` leaves a "zombie" connection that holds its transaction, and
    with it the write lock, until the garbage collector runs. Instead we keep the
    connection: the rollback SQLAlchemy sends next runs on the same thread right after
    the interrupted statement, and the connection returns to the pool clean.

    A statement waiting in SQLite's busy handler for the write lock cannot be
    interrupted; its cancellation takes effect when the wait ends (DB_BUSY_TIMEOUT_MS).
    """

    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        if not isinstance(context.original_exception, asyncio.CancelledError):
            return
        connection = context.connection
        if connection is None or connection.invalidated:
            return
        driver = connection.connection.driver_connection
        if not isinstance(driver, aiosqlite.Connection):
            return
        try:
            # aiosqlite's interrupt() calls sqlite3's on this thread, not queued behind the
            # running statement; awaited here (this hook is sync, inside SQLAlchemy's
            # greenlet) it completes without suspending. With no statement running it has
            # no effect on later ones.
            await_(driver.interrupt())
        except ValueError:  # aiosqlite: "no active connection", already closed
            return
        context.is_disconnect = False
