"""The blocking sqlite3 unit of work for each operation, shared by the sqlite3 variants.

Connections are set up like the project's engine does (db/sqlite_engine.py): the driver's own
transaction control is off (`isolation_level=None`), every write transaction begins
IMMEDIATE, and the same PRAGMAs apply, so the variants differ only in how they are called.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from lab.bench.ops import Meter, Op
from lab.bench.sql import SELECT_ONE, Statements, history_checksum

BUSY_TIMEOUT_MS: Final = 5_000  # the project's default DB_BUSY_TIMEOUT_MS
PRAGMAS: Final = (
    "PRAGMA foreign_keys=ON",
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
)
SQL: Final = Statements("qmark")


def connect(path: str, *, any_thread: bool = False) -> sqlite3.Connection:
    """A sqlite3 connection set up like the project's engine sets up its connections."""
    connection = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=not any_thread,
        timeout=BUSY_TIMEOUT_MS / 1000,
    )
    for pragma in PRAGMAS:
        connection.execute(pragma)
    return connection


def transfer(connection: sqlite3.Connection, op: Op, meter: Meter) -> int:
    """Move op.amount from op.account to op.other; 1 if committed, 0 if refused."""
    connection.execute("BEGIN IMMEDIATE")
    meter.statements += 1
    try:
        for statement, params in SQL.legs(op):
            cursor = connection.execute(statement, params)
            meter.statements += 1
            if cursor.rowcount != 1:
                connection.rollback()
                return 0
        connection.execute(SQL.record, SQL.record_params(op))
        meter.statements += 1
        connection.commit()
        meter.commits += 1
        return 1
    except BaseException:
        connection.rollback()
        raise


def point_read(connection: sqlite3.Connection, op: Op, meter: Meter) -> int:
    """One account's balance, in autocommit: one statement, no transaction to open."""
    row = connection.execute(SQL.point, (op.account,)).fetchone()
    meter.statements += 1
    if row is None:
        raise LookupError(f"account {op.account} does not exist")
    return int(row[0])


def dashboard(connection: sqlite3.Connection, op: Op, meter: Meter) -> int:
    """An account and its newest transfers, read in one snapshot (a deferred transaction)."""
    connection.execute("BEGIN DEFERRED")
    try:
        account = connection.execute(SQL.account, (op.account,)).fetchone()
        rows = connection.execute(SQL.history, SQL.history_params(op.account)).fetchall()
        meter.statements += 3
        connection.commit()
        meter.commits += 1
    except BaseException:
        connection.rollback()
        raise
    if account is None:
        raise LookupError(f"account {op.account} does not exist")
    return history_checksum([int(row[0]) for row in rows])


def select_one(connection: sqlite3.Connection, op: Op, meter: Meter) -> int:
    """The cheapest statement there is: what a thread hop is measured against."""
    connection.execute(SELECT_ONE)
    meter.statements += 1
    return 1
